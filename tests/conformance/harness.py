"""The test server process, a protocol peer over the `websockets` client, and a
raw WebSocket / HTTP client for what happens below the WebSocket layer."""

import asyncio
import base64
import json
import os
import re
import signal
import struct
import tempfile

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import codec
from codec import PRESENCE_SNAPSHOT, SUB_REPLY, UNIT

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
JSON_PROTO = "sente-lite.json.v1"
POSTCARD_PROTO = "sente-lite.postcard.v1"
ENCODINGS = ("json", "postcard")
MAX_SAFE = 2**53 - 1


def server_binary() -> str:
    path = os.environ.get("SENTE_LITE_TEST_SERVER")
    if path:
        return path
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    return os.path.join(target, "debug", "examples", "js_test_server")


def background(fn):
    """Mark a test that mostly waits: it starts first and runs alongside the others."""
    fn.background = True
    return fn


# ---------------------------------------------------------------- the server


class Server:
    """examples/js_test_server.rs on a free port: `async with Server("--flag", "v") as srv`."""

    def __init__(self, *args):
        self.args = [str(a) for a in args]
        self.proc = None
        self.log = None

    async def start(self):
        binary = server_binary()
        if not os.path.exists(binary):
            raise RuntimeError(f"test server not built: {binary} (cargo build -p "
                               "sente-lite-examples --example js_test_server)")
        self.log = tempfile.NamedTemporaryFile(prefix="sl-conformance-", suffix=".log", delete=False)
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
        self.proc = await asyncio.create_subprocess_exec(
            binary, "--addr", "127.0.0.1:0", *self.args,
            stdout=asyncio.subprocess.PIPE, stderr=self.log, env=env)
        line = await asyncio.wait_for(self.proc.stdout.readline(), 20)
        m = re.match(r"listening ws://([^/]+)(/\S*)", line.decode())
        if not m:
            raise RuntimeError(f"unexpected first line from the server: {line!r}")
        self.addr, self.path = m.group(1), m.group(2)
        self.host, port = self.addr.rsplit(":", 1)
        self.port = int(port)
        self.url = f"ws://{self.addr}{self.path}"
        return self

    def terminate(self):
        """SIGTERM: the server drains."""
        self.proc.send_signal(signal.SIGTERM)

    async def wait_exit(self, timeout):
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def stop(self):
        if self.proc and self.proc.returncode is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(self.proc.wait(), 5)
            except (asyncio.TimeoutError, ProcessLookupError):
                try:
                    self.proc.kill()
                except ProcessLookupError:
                    pass
                await self.proc.wait()
        if self.log:
            self.log.close()

    def log_tail(self, n=30):
        try:
            with open(self.log.name, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()


# ---------------------------------------------------------------- a protocol peer


class Peer:
    """One connection speaking the protocol through the `websockets` client.

    Every frame received is checked to be canonical: a JSON frame must be the
    compact serialization of itself, a postcard frame the re-encoding of what
    it decodes to (so: shortest varints, nothing trailing).
    """

    def __init__(self, ws, enc):
        self.ws = ws
        self.enc = enc  # "json" or "postcard": what the server must send
        self.reply_types = {}  # our req_id -> postcard type of the reply
        self.question_types = {}  # the server's req_id -> postcard type of our reply
        self.handshake = None
        self.handshake_rest = b""

    @classmethod
    async def open(cls, srv, enc="json", name=None, subprotocols="default", headers=None,
                   read_handshake=True):
        if subprotocols == "default":
            subprotocols = {"json": [JSON_PROTO], "postcard": [POSTCARD_PROTO], "none": None}[enc]
        url = srv.url + (f"?name={name}" if name else "")
        ws = await connect(url, subprotocols=subprotocols, additional_headers=headers,
                           ping_interval=None, compression=None, max_size=None,
                           open_timeout=5, close_timeout=3, max_queue=None)
        peer = cls(ws, "postcard" if ws.subprotocol == POSTCARD_PROTO else "json")
        if read_handshake:
            f = await peer.recv()
            assert f[0] == "sl/handshake", f"first frame is not the handshake: {f}"
            peer.handshake = f[1]
        return peer

    async def close(self):
        await self.ws.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.ws.close()

    # -- sending

    def encode(self, frame, enc=None):
        enc = enc or self.enc
        if enc == "json":
            return codec.json_encode(frame)
        name = frame[0]
        t = None
        if not name.startswith("sl/"):
            t = codec.ALL_EVENTS[name][1]
        elif name == "sl/pub":
            t = codec.ALL_EVENTS[frame[2]][1]
        elif name == "sl/ok":
            t = self.question_types.get(frame[1])
            if t is None:
                raise ValueError(f"no server request {frame[1]} to answer in postcard")
        return codec.pc_encode(frame, t)

    async def send(self, frame, enc=None):
        """Send a frame in its neutral form (in this connection's encoding, or `enc`)."""
        name = frame[0]
        if not name.startswith("sl/") and len(frame) >= 3:
            self.reply_types[frame[2]] = codec.ALL_EVENTS[name][2]
        elif name == "sl/sub":
            self.reply_types[frame[1]] = SUB_REPLY
        elif name == "sl/unsub":
            self.reply_types[frame[1]] = UNIT
        elif name == "sl/presence":
            self.reply_types[frame[1]] = PRESENCE_SNAPSHOT
        await self.ws.send(self.encode(frame, enc))

    async def send_raw(self, data):
        """A text (str) or binary (bytes) message, as is."""
        await self.ws.send(data)

    def expect_reply(self, req_id, ptype):
        """For frames sent raw: the postcard type of the reply to `req_id`."""
        self.reply_types[req_id] = ptype

    # -- receiving

    def _payload_type(self, kind, ident):
        if kind == "sl/ok":
            t = self.reply_types.get(ident)
            if t is None:
                raise AssertionError(f"sl/ok for req_id {ident}, which was never sent")
            return t
        if ident not in codec.ALL_EVENTS:
            raise AssertionError(f"frame for an unknown event key {ident!r}")
        return codec.ALL_EVENTS[ident][1]

    def decode(self, msg):
        if isinstance(msg, str):
            assert self.enc == "json", f"text message on a postcard connection: {msg!r}"
            frame = codec.json_decode(msg)
            canon = codec.json_encode(frame)
            assert msg == canon, f"not the compact JSON of itself:\n  got  {msg}\n  want {canon}"
        else:
            assert self.enc == "postcard", f"binary message on a JSON connection: {msg.hex(' ')}"
            frame, rest = codec.pc_decode(msg, self._payload_type)
            if frame[0] == "sl/handshake":
                self.handshake_rest = rest
                canon = codec.pc_encode(frame) + rest
            else:
                canon = self.encode(frame, "postcard") if frame[0] != "sl/ok" else \
                    codec.pc_encode(frame, self.reply_types[frame[1]])
            assert msg == canon, (f"postcard frame is not canonical:\n  got  {msg.hex(' ')}\n"
                                  f"  want {canon.hex(' ')}")
        name = frame[0]
        if not name.startswith("sl/") and len(frame) >= 3:
            self.question_types[frame[2]] = codec.ALL_EVENTS[name][2]
        return frame

    async def recv_msg(self, timeout=5.0):
        try:
            return await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"nothing received within {timeout} s")
        except ConnectionClosed as e:
            raise AssertionError(f"connection closed while waiting for a frame: {describe_close(e)}")

    async def recv(self, timeout=5.0):
        return self.decode(await self.recv_msg(timeout))

    async def recv_n(self, n, timeout=5.0):
        return [await self.recv(timeout) for _ in range(n)]

    async def silence(self, secs):
        """Nothing arrives for `secs`."""
        try:
            msg = await asyncio.wait_for(self.ws.recv(), secs)
        except asyncio.TimeoutError:
            return
        except ConnectionClosed as e:
            raise AssertionError(f"connection closed: {describe_close(e)}")
        raise AssertionError(f"unexpected frame: {msg!r}")

    async def expect_close(self, code, timeout=5.0):
        """Read until the server's close frame; returns the frames read before it.
        The close frame itself must arrive (a reset or a bare EOF fails)."""
        frames = []
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            try:
                msg = await asyncio.wait_for(self.ws.recv(), max(0.01, end - loop.time()))
            except asyncio.TimeoutError:
                raise AssertionError(f"no close within {timeout} s; frames: {frames}")
            except ConnectionClosed as e:
                assert e.rcvd is not None, (
                    f"the connection ended without a close frame from the server "
                    f"(frames before: {frames}; {describe_close(e)})")
                assert e.rcvd.code == code, (
                    f"close code {e.rcvd.code} ({e.rcvd.reason!r}), want {code}; frames: {frames}")
                return frames
            frames.append(self.decode(msg))

    async def request(self, frame, timeout=5.0):
        """Send a request and return the next frame (which must answer it)."""
        await self.send(frame)
        f = await self.recv(timeout)
        req_id = frame[1] if frame[0] in ("sl/sub", "sl/unsub", "sl/presence") else frame[2]
        assert f[0] in ("sl/ok", "sl/err") and f[1] == req_id, f"not the reply to {frame}: {f}"
        return f


async def publish(p, req_id, channel, text, reached):
    """test/publish from `p`, which is itself subscribed: its reply and its own
    publication may come in either order. Returns the publication."""
    await p.send(["test/publish", {"channel": channel, "text": text}, req_id])
    a, b = await p.recv(), await p.recv()
    reply, pub = (a, b) if a[0] == "sl/ok" else (b, a)
    assert reply == ["sl/ok", req_id, reached], (a, b)
    assert pub[:4] == ["sl/pub", channel, "test/news", {"text": text}] and len(pub) == 5, (a, b)
    return pub


def describe_close(e):
    r = f"received {e.rcvd.code} {e.rcvd.reason!r}" if e.rcvd else "no close frame received"
    s = f"sent {e.sent.code}" if e.sent else "none sent"
    return f"{r}, {s}"


async def open_status(srv, **kw):
    """Try to open; return the HTTP status of a refusal, or 101."""
    try:
        p = await Peer.open(srv, read_handshake=False, **kw)
    except InvalidStatus as e:
        return e.response.status_code
    await p.close()
    return 101


def assert_err(frame, req_id, code, message=None, data="absent"):
    assert frame[0] == "sl/err" and frame[1] == req_id, f"want sl/err {req_id} {code}: got {frame}"
    e = frame[2]
    assert e["code"] == code, f"want code {code}: got {frame}"
    assert isinstance(e["message"], str) and e["message"], f"error without a message: {frame}"
    if message is not None:
        assert e["message"] == message, f"want message {message!r}: got {frame}"
    if data != "absent":
        assert e.get("data") == data, f"want data {data!r}: got {frame}"


def assert_error(frame, code):
    assert frame[0] == "sl/error", f"want sl/error {code}: got {frame}"
    assert frame[1]["code"] == code, f"want sl/error {code}: got {frame}"
    assert isinstance(frame[1]["message"], str) and frame[1]["message"], f"no message: {frame}"


# ---------------------------------------------------------------- raw HTTP / WebSocket


def ws_key():
    return base64.b64encode(os.urandom(16)).decode()


def upgrade_head(srv, path="/ws", host=None, method="GET", key="auto", version="13",
                 origin=None, protocols=None, upgrade="websocket", connection="Upgrade",
                 extra=()):
    lines = [f"{method} {path} HTTP/1.1"]
    if host is not False:
        lines.append(f"Host: {host or srv.addr}")
    if upgrade:
        lines.append(f"Upgrade: {upgrade}")
    if connection:
        lines.append(f"Connection: {connection}")
    if key == "auto":
        key = ws_key()
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    if origin:
        lines.append(f"Origin: {origin}")
    if protocols:
        lines.append(f"Sec-WebSocket-Protocol: {protocols}")
    lines.extend(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_http_response(reader, timeout=5.0):
    """Returns (status, headers dict lowercased, body bytes)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers.setdefault(k.strip().lower(), []).append(v.strip())
    body = b""
    if status != 101:
        if "content-length" in headers:
            n = int(headers["content-length"][0])
            body = await asyncio.wait_for(reader.readexactly(n), timeout)
        elif "chunked" in ",".join(headers.get("transfer-encoding", [])):
            while True:
                size = int((await asyncio.wait_for(reader.readline(), timeout)).strip(), 16)
                chunk = await asyncio.wait_for(reader.readexactly(size + 2), timeout)
                if size == 0:
                    break
                body += chunk[:-2]
    return status, headers, body


async def http(srv, request: bytes, timeout=5.0):
    reader, writer = await asyncio.open_connection(srv.host, srv.port)
    try:
        writer.write(request)
        await writer.drain()
        return await read_http_response(reader, timeout)
    finally:
        writer.close()


class RawWS:
    """A WebSocket client written by hand (RFC 6455), to send what a library would not."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, srv, protocol=JSON_PROTO, early: bytes = b"", query=""):
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        writer.write(upgrade_head(srv, path=srv.path + query, protocols=protocol) + early)
        await writer.drain()
        status, headers, _ = await read_http_response(reader)
        assert status == 101, f"upgrade refused: {status}"
        return cls(reader, writer)

    @staticmethod
    def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None):
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload) if length is None else length
        mbit = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            head = struct.pack("!BBQ", b0, mbit | 127, n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        return head + payload

    async def send(self, opcode, payload=b"", **kw):
        self.writer.write(self.frame(opcode, payload, **kw))
        await self.writer.drain()

    async def send_text(self, text):
        await self.send(0x1, text.encode() if isinstance(text, str) else text)

    async def send_close(self, code=1000, reason=b""):
        await self.send(0x8, struct.pack("!H", code) + reason)

    async def recv_frame(self, timeout=5.0):
        """(opcode, payload) of the next frame; the server's frames are never masked."""
        async def read():
            b0, b1 = await self.reader.readexactly(2)
            assert not b1 & 0x80, "the server masked a frame"
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(n)
            assert b0 & 0x80, "fragmented frame from the server (not handled here)"
            return b0 & 0x0F, payload
        return await asyncio.wait_for(read(), timeout)

    async def recv_until_close(self, timeout=5.0):
        """Frames up to and including the close frame, then how the stream ended:
        returns (frames, close_code, end) with end "eof" or "reset" or "open"."""
        frames = []
        code = None
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        try:
            while True:
                op, payload = await self.recv_frame(max(0.01, end - loop.time()))
                if op == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    break
                frames.append((op, payload))
        except asyncio.IncompleteReadError:
            return frames, None, "eof"
        except ConnectionResetError:
            return frames, None, "reset"
        except asyncio.TimeoutError:
            return frames, None, "open"
        # after the close frame: the server closes the TCP connection
        try:
            rest = await asyncio.wait_for(self.reader.read(), max(0.01, end - loop.time()) + 3)
            return frames, code, "eof" if rest == b"" else f"data after close: {rest!r}"
        except ConnectionResetError:
            return frames, code, "reset"
        except asyncio.TimeoutError:
            return frames, code, "open"

    def close(self):
        self.writer.close()


def json_frames(frames):
    """Decode the text frames read by RawWS."""
    out = []
    for op, payload in frames:
        assert op == 0x1, f"non-text frame {op}"
        out.append(json.loads(payload.decode()))
    return out
