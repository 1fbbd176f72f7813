"""The wire encodings of docs/PROTOCOL.md, written from the document alone.

Frames are handled in one neutral form, the JSON array of section 3 (a list
whose first element is an event id or an `sl/...` name), so that a test can
state the frame it expects once and check it in both encodings:

    ["test/echo", {"text": "hi"}]                 event
    ["test/echo", {"text": "hi"}, 7]              request without deadline
    ["test/echo", {"text": "hi"}, 7, 5000]        request with deadline
    ["sl/ok", 7, payload]
    ["sl/err", 7, {"code": ..., "message": ..., "data"?: ...}]
    ["sl/handshake", {...}]   ["sl/ping", n]   ["sl/pong", n]
    ["sl/sub", 8, "room/lobby"(, since)]   ["sl/unsub", 9, "room/lobby"]
    ["sl/pub", channel, id, payload(, position)]
    ["sl/presence", 10, "room/lobby", true]
    ["sl/presence-diff", "room/lobby", {"joined": [member], "left": [user_id]}]
    ["sl/resub", {"channel": "room/lobby"}]
    ["sl/cancel", 7]   ["sl/extensions", ["cancel"]]
    ["sl/error", {...}]   ["sl/close", {...}]

In postcard (section 4) a payload is the postcard encoding of a Rust type; the
types below describe those types, and decode to the same JSON shape (structs as
objects with their field names, `Option` as the value or None, unit as None).
"""

import json

# ---------------------------------------------------------------- keys, hashes


def fnv1a32(data: bytes) -> int:
    """The event key of section 2."""
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) % 2**32
    return h


def key_of(event_id: str) -> int:
    return fnv1a32(event_id.encode("utf-8"))


def canonical_json(value, keep_order=False) -> str:
    """Section 2, "Canonical JSON": RFC 8785 except `properties` maps keep their order."""
    if isinstance(value, dict):
        names = list(value) if keep_order else sorted(value, key=lambda n: n.encode("utf-16-be"))
        return "{" + ",".join(
            json.dumps(n, ensure_ascii=False) + ":"
            + canonical_json(value[n], not keep_order and n == "properties")
            for n in names) + "}"
    if isinstance(value, list):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return es_number(value)
    return json.dumps(value, ensure_ascii=False)


def es_number(x) -> str:
    """A number as ECMAScript writes the nearest double (RFC 8785 section 3.2.2.3)."""
    x = float(x)
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    # The shortest digits that read back as the same double (17 always do).
    for k in range(1, 18):
        mantissa, exp = ("%.*e" % (k - 1, abs(x))).split("e")
        if float(mantissa + "e" + exp) == abs(x):
            break
    digits = mantissa.replace(".", "").rstrip("0") or "0"
    k, n = len(digits), int(exp) + 1
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        out = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e > 0 else "-") + str(abs(e))
    return sign + out


def schema_hash(events) -> str:
    """Section 2: `events` as in a description, `[{"id", "kind", "payload", "reply"?}]`."""
    lines = sorted(
        f"{e['id']}\t{e['kind']}\t{canonical_json(e['payload'])}\t"
        f"{canonical_json(e['reply']) if e.get('reply') is not None else ''}\n"
        for e in events)
    h = 0xCBF29CE484222325
    for b in "".join(lines).encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) % 2**64
    return "%016x" % h


# ---------------------------------------------------------------- varints


class DecodeError(Exception):
    pass


def enc_varint(n: int, bits: int = 64) -> bytes:
    if n < 0 or n >= 2**bits:
        raise ValueError(f"{n} does not fit u{bits}")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def dec_varint(buf: bytes, pos: int, bits: int = 64, strict: bool = True):
    """Decode a LEB128 varint; strict: refuse redundant continuation bytes."""
    n = 0
    shift = 0
    start = pos
    while True:
        if pos >= len(buf):
            raise DecodeError("varint runs past the end")
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
        if shift > bits + 7:
            raise DecodeError("varint too long")
    if n >= 2**bits:
        raise DecodeError(f"varint over u{bits}")
    if strict and pos - start > 1 and buf[pos - 1] == 0:
        raise DecodeError("overlong varint")
    return n, pos


# ---------------------------------------------------------------- postcard types


class PType:
    def enc(self, v) -> bytes:
        raise NotImplementedError

    def dec(self, buf: bytes, pos: int):
        raise NotImplementedError

    def decode_all(self, buf: bytes):
        v, pos = self.dec(buf, 0)
        if pos != len(buf):
            raise DecodeError(f"{len(buf) - pos} trailing bytes after the payload")
        return v


class UInt(PType):
    def __init__(self, bits):
        self.bits = bits

    def enc(self, v):
        return enc_varint(v, self.bits)

    def dec(self, buf, pos):
        return dec_varint(buf, pos, self.bits)


class Bool(PType):
    def enc(self, v):
        return b"\x01" if v else b"\x00"

    def dec(self, buf, pos):
        if pos >= len(buf) or buf[pos] > 1:
            raise DecodeError("bad bool")
        return bool(buf[pos]), pos + 1


class Str(PType):
    def enc(self, v):
        b = v.encode("utf-8")
        return enc_varint(len(b)) + b

    def dec(self, buf, pos):
        n, pos = dec_varint(buf, pos)
        if pos + n > len(buf):
            raise DecodeError("string runs past the end")
        try:
            return buf[pos : pos + n].decode("utf-8"), pos + n
        except UnicodeDecodeError as e:
            raise DecodeError(str(e))


class Opt(PType):
    def __init__(self, inner):
        self.inner = inner

    def enc(self, v):
        return b"\x00" if v is None else b"\x01" + self.inner.enc(v)

    def dec(self, buf, pos):
        if pos >= len(buf):
            raise DecodeError("option runs past the end")
        tag = buf[pos]
        if tag == 0:
            return None, pos + 1
        if tag == 1:
            return self.inner.dec(buf, pos + 1)
        raise DecodeError(f"bad option tag {tag}")


class Vec(PType):
    def __init__(self, inner):
        self.inner = inner

    def enc(self, v):
        return enc_varint(len(v)) + b"".join(self.inner.enc(x) for x in v)

    def dec(self, buf, pos):
        n, pos = dec_varint(buf, pos)
        out = []
        for _ in range(n):
            x, pos = self.inner.dec(buf, pos)
            out.append(x)
        return out, pos


class Struct(PType):
    def __init__(self, *fields):
        self.fields = fields

    def enc(self, v):
        return b"".join(t.enc(v[name]) for name, t in self.fields)

    def dec(self, buf, pos):
        out = {}
        for name, t in self.fields:
            out[name], pos = t.dec(buf, pos)
        return out, pos


class JsonText(PType):
    """A JSON value carried as its compact JSON text (a member's `info`)."""

    def enc(self, v):
        return STR.enc(json_encode(v))

    def dec(self, buf, pos):
        text, pos = STR.dec(buf, pos)
        try:
            return json.loads(text), pos
        except ValueError as e:
            raise DecodeError(f"not JSON text: {text!r} ({e})")


class Unit(PType):
    def enc(self, v):
        assert v is None
        return b""

    def dec(self, buf, pos):
        return None, pos


U16, U32, U64 = UInt(16), UInt(32), UInt(64)
USIZE = U64  # postcard writes usize as a u64 varint
STR, BOOL, UNIT = Str(), Bool(), Unit()
POSITION = Struct(("epoch", STR), ("offset", U64))
SUB_REPLY = Struct(("position", Opt(POSITION)), ("recovered", BOOL))
# Section 4: a member is user_id: str, info: Option<str> (JSON text); the reply to a
# presence request is members: Vec<member>.
MEMBER = Struct(("user_id", STR), ("info", Opt(JsonText())))
PRESENCE_SNAPSHOT = Struct(("members", Vec(MEMBER)))

TEXT = Struct(("text", STR))
ECHOED = Struct(("text", STR), ("conn_id", U64), ("user_id", Opt(STR)))

# The application's events (the test server's contract): id -> (kind, payload, reply)
EVENTS = {
    "test/echo": ("request", TEXT, ECHOED),
    "test/fail": ("request", Struct(("reason", STR)), UNIT),
    "test/slow": ("request", Struct(("ms", U64)), U64),
    "test/note": ("event", Struct(("client", STR), ("seq", U64)), None),
    "test/notes": ("request", Struct(("client", STR)), Vec(U64)),
    "test/publish": ("request", Struct(("channel", STR), ("text", STR)), USIZE),
    "test/publish-others": ("request", Struct(("channel", STR), ("text", STR)), USIZE),
    "test/resub": ("request", Struct(("channel", STR), ("then_publish", Opt(STR))), USIZE),
    "test/news": ("event", TEXT, None),
    "test/push": ("event", TEXT, None),
    "test/ask": ("request", TEXT, STR),
    "test/question": ("request", TEXT, STR),
    "test/hold": ("request", Struct(("tag", STR)), UNIT),
    "test/held": ("request", Struct(("tag", STR)), STR),
    "test/ask-within": ("request", Struct(("text", STR), ("deadline_ms", U64),
                                          ("give_up_ms", U64)), STR),
}
# The examples of sections 3 and 4.
SPEC_EVENTS = {
    "chat/send": ("event", TEXT, None),
    "user/get": ("request", Struct(("id", U64)), Struct(("id", U64), ("name", STR))),
}
ALL_EVENTS = {**EVENTS, **SPEC_EVENTS}
ID_OF_KEY = {key_of(i): i for i in ALL_EVENTS}


# ---------------------------------------------------------------- JSON frames


def json_encode(frame) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def json_decode(text: str):
    frame = json.loads(text)
    if not isinstance(frame, list) or not frame or not isinstance(frame[0], str):
        raise DecodeError(f"not a frame: {text!r}")
    return frame


# ---------------------------------------------------------------- postcard frames

KINDS = {
    "event": 0, "request": 1, "sl/ok": 2, "sl/err": 3, "sl/pub": 4, "sl/handshake": 5,
    "sl/ping": 6, "sl/pong": 7, "sl/sub": 8, "sl/unsub": 9, "sl/error": 10, "sl/close": 11,
    "sl/presence": 12, "sl/presence-diff": 13, "sl/resub": 14, "sl/cancel": 15,
    "sl/extensions": 16,
}

HANDSHAKE_FIELDS = [
    ("version", U16), ("conn_id", U64), ("user_id", Opt(STR)), ("interval_ms", U32),
    ("timeout_ms", U32), ("schema_hash", STR), ("max_message_size", U32),
    ("extensions", Vec(STR)), ("max_in_flight", U32), ("rate_per_sec", U32),
    ("rate_burst", U32), ("max_subscriptions", U32), ("max_channel_name", U32),
]
ERROR = Struct(("code", STR), ("message", STR), ("data", Opt(STR)))
CLOSE = Struct(("code", STR), ("message", STR), ("reconnect_after_ms", Opt(U32)))
PRESENCE_DIFF = Struct(("joined", Vec(MEMBER)), ("left", Vec(STR)))
RESUB = Struct(("channel", STR))


def _error_obj(e):
    out = {"code": e["code"], "message": e["message"]}
    if e["data"] is not None:
        out["data"] = json.loads(e["data"])
    return out


def _error_fields(obj):
    data = json_encode(obj["data"]) if "data" in obj else None
    return {"code": obj["code"], "message": obj["message"], "data": data}


def pc_encode(frame, payload_type: PType = None) -> bytes:
    """Encode a frame in its neutral form; payload_type for frames with a payload."""
    name = frame[0]
    if not name.startswith("sl/"):
        if len(frame) == 2:
            return enc_varint(0) + U32.enc(key_of(name)) + payload_type.enc(frame[1])
        deadline = frame[3] if len(frame) > 3 else None
        return (enc_varint(1) + U32.enc(key_of(name)) + U64.enc(frame[2])
                + Opt(U32).enc(deadline) + payload_type.enc(frame[1]))
    kind = enc_varint(KINDS[name])
    if name == "sl/ok":
        return kind + U64.enc(frame[1]) + payload_type.enc(frame[2])
    if name == "sl/err":
        return kind + U64.enc(frame[1]) + ERROR.enc(_error_fields(frame[2]))
    if name == "sl/pub":
        pos = frame[4] if len(frame) > 4 else None
        return (kind + STR.enc(frame[1]) + U32.enc(key_of(frame[2])) + Opt(POSITION).enc(pos)
                + payload_type.enc(frame[3]))
    if name == "sl/handshake":
        h = frame[1]
        flat = {
            "version": h["version"], "conn_id": h["conn_id"], "user_id": h["user_id"],
            "interval_ms": h["heartbeat"]["interval_ms"], "timeout_ms": h["heartbeat"]["timeout_ms"],
            "schema_hash": h["schema_hash"], "max_message_size": h["max_message_size"],
            "extensions": h["extensions"], **h["limits"],
        }
        return kind + Struct(*HANDSHAKE_FIELDS).enc(flat)
    if name in ("sl/ping", "sl/pong"):
        return kind + U64.enc(frame[1])
    if name == "sl/sub":
        since = frame[3] if len(frame) > 3 else None
        return kind + U64.enc(frame[1]) + STR.enc(frame[2]) + Opt(POSITION).enc(since)
    if name == "sl/unsub":
        return kind + U64.enc(frame[1]) + STR.enc(frame[2])
    if name == "sl/error":
        return kind + ERROR.enc(_error_fields(frame[1]))
    if name == "sl/close":
        return kind + CLOSE.enc(frame[1])
    if name == "sl/presence":
        return kind + U64.enc(frame[1]) + STR.enc(frame[2]) + BOOL.enc(frame[3])
    if name == "sl/presence-diff":
        return kind + STR.enc(frame[1]) + PRESENCE_DIFF.enc(frame[2])
    if name == "sl/resub":
        return kind + RESUB.enc(frame[1])
    if name == "sl/cancel":
        return kind + U64.enc(frame[1])
    if name == "sl/extensions":
        return kind + Vec(STR).enc(frame[1])
    raise ValueError(name)


def pc_decode(buf: bytes, payload_type_of):
    """Decode a binary frame into its neutral form.

    payload_type_of(kind, id_or_req_id) gives the payload's type: kind is
    "event", "request" or "sl/pub" with the event id, or "sl/ok" with the req_id.
    Returns (frame, payload_bytes) where payload_bytes is the raw payload (or None).
    """
    kind, pos = dec_varint(buf, 0, 32)

    def rest_empty(p):
        if p != len(buf):
            raise DecodeError(f"{len(buf) - p} trailing bytes after a header")

    def event_id(key):
        return ID_OF_KEY.get(key, key)

    def payload(p, k, ident):
        t = payload_type_of(k, ident)
        return t.decode_all(buf[p:]), buf[p:]

    if kind == 0:
        key, pos = U32.dec(buf, pos)
        ident = event_id(key)
        v, raw = payload(pos, "event", ident)
        return [ident, v], raw
    if kind == 1:
        key, pos = U32.dec(buf, pos)
        req_id, pos = U64.dec(buf, pos)
        deadline, pos = Opt(U32).dec(buf, pos)
        ident = event_id(key)
        v, raw = payload(pos, "request", ident)
        f = [ident, v, req_id] + ([] if deadline is None else [deadline])
        return f, raw
    if kind == 2:
        req_id, pos = U64.dec(buf, pos)
        v, raw = payload(pos, "sl/ok", req_id)
        return ["sl/ok", req_id, v], raw
    if kind == 3:
        req_id, pos = U64.dec(buf, pos)
        e, pos = ERROR.dec(buf, pos)
        rest_empty(pos)
        return ["sl/err", req_id, _error_obj(e)], None
    if kind == 4:
        channel, pos = STR.dec(buf, pos)
        key, pos = U32.dec(buf, pos)
        position, pos = Opt(POSITION).dec(buf, pos)
        ident = event_id(key)
        v, raw = payload(pos, "sl/pub", ident)
        f = ["sl/pub", channel, ident, v] + ([] if position is None else [position])
        return f, raw
    if kind == 5:
        h, pos = Struct(*HANDSHAKE_FIELDS).dec(buf, pos)
        # A handshake may gain fields at its end: the rest is ignored.
        return ["sl/handshake", {
            "version": h["version"], "conn_id": h["conn_id"], "user_id": h["user_id"],
            "heartbeat": {"interval_ms": h["interval_ms"], "timeout_ms": h["timeout_ms"]},
            "schema_hash": h["schema_hash"], "max_message_size": h["max_message_size"],
            "extensions": h["extensions"],
            "limits": {k: h[k] for k in ("max_in_flight", "rate_per_sec", "rate_burst",
                                         "max_subscriptions", "max_channel_name")},
        }], buf[pos:]
    if kind in (6, 7):
        n, pos = U64.dec(buf, pos)
        rest_empty(pos)
        return ["sl/ping" if kind == 6 else "sl/pong", n], None
    if kind == 8:
        req_id, pos = U64.dec(buf, pos)
        channel, pos = STR.dec(buf, pos)
        since, pos = Opt(POSITION).dec(buf, pos)
        rest_empty(pos)
        return ["sl/sub", req_id, channel] + ([] if since is None else [since]), None
    if kind == 9:
        req_id, pos = U64.dec(buf, pos)
        channel, pos = STR.dec(buf, pos)
        rest_empty(pos)
        return ["sl/unsub", req_id, channel], None
    if kind == 10:
        e, pos = ERROR.dec(buf, pos)
        rest_empty(pos)
        return ["sl/error", _error_obj(e)], None
    if kind == 11:
        c, pos = CLOSE.dec(buf, pos)
        rest_empty(pos)
        return ["sl/close", c], None
    if kind == 12:
        req_id, pos = U64.dec(buf, pos)
        channel, pos = STR.dec(buf, pos)
        watch, pos = BOOL.dec(buf, pos)
        rest_empty(pos)
        return ["sl/presence", req_id, channel, watch], None
    if kind == 13:
        channel, pos = STR.dec(buf, pos)
        diff, pos = PRESENCE_DIFF.dec(buf, pos)
        rest_empty(pos)
        return ["sl/presence-diff", channel, diff], None
    if kind == 14:
        resub, pos = RESUB.dec(buf, pos)
        rest_empty(pos)
        return ["sl/resub", resub], None
    if kind == 15:
        req_id, pos = U64.dec(buf, pos)
        rest_empty(pos)
        return ["sl/cancel", req_id], None
    if kind == 16:
        names, pos = Vec(STR).dec(buf, pos)
        rest_empty(pos)
        return ["sl/extensions", names], None
    raise DecodeError(f"unknown header kind {kind}")
