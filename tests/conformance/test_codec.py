"""Sections 2-4 without a server: the document's own examples must round-trip
byte-exactly through this suite's codec, and appear in the document as written."""

import os

import codec
from codec import PRESENCE_SNAPSHOT, SPEC_EVENTS, SUB_REPLY, UNIT
from harness import REPO

with open(os.path.join(REPO, "docs", "PROTOCOL.md"), encoding="utf-8") as f:
    DOC = f.read()

USER = SPEC_EVENTS["user/get"][2]
HANDSHAKE_JSON = (
    '["sl/handshake",{"version":1,"conn_id":12,"user_id":"ada","heartbeat":{"interval_ms":25000,'
    '"timeout_ms":10000},"schema_hash":"9f3b2c1d4e5a6b7c","max_message_size":1048576,'
    '"extensions":[],"limits":{"max_in_flight":64,"rate_per_sec":200,"rate_burst":400,'
    '"max_subscriptions":256,"max_channel_name":256}}]')

# (JSON text of section 3, hex of section 4 or None, reply type for sl/ok)
EXAMPLES = [
    ('["chat/send",{"text":"hi"}]', "00 92 f8 c2 b7 07 02 68 69", None),
    ('["user/get",{"id":1},7,5000]', "01 d1 c2 e8 8b 0a 07 01 88 27 01", None),
    ('["user/get",{"id":1},7]', "01 d1 c2 e8 8b 0a 07 00 01", None),
    ('["sl/ok",7,{"id":1,"name":"ada"}]', "02 07 01 03 61 64 61", USER),
    ('["sl/err",7,{"code":"user/not-found","message":"no user 1"}]',
     "03 07 0e 75 73 65 72 2f 6e 6f 74 2d 66 6f 75 6e 64 09 6e 6f 20 75 73 65 72 20 31 00", None),
    ('["sl/err",7,{"code":"bad-payload","message":"x","data":{"field":"id"}}]', None, None),
    (HANDSHAKE_JSON,
     "05 01 0c 01 03 61 64 61 a8 c3 01 90 4e 10 39 66 33 62 32 63 31 64 34 65 35 61 36 62 37 63 "
     "80 80 40 00 40 c8 01 90 03 80 02 80 02", None),
    ('["sl/ping",3]', "06 03", None),
    ('["sl/pong",3]', "07 03", None),
    ('["sl/sub",8,"room/lobby"]', "08 08 0a 72 6f 6f 6d 2f 6c 6f 62 62 79 00", None),
    ('["sl/sub",8,"room/lobby",{"epoch":"k3x9","offset":42}]', None, None),
    ('["sl/ok",8,{"position":{"epoch":"k3x9","offset":42},"recovered":true}]',
     "02 08 01 04 6b 33 78 39 2a 01", SUB_REPLY),
    ('["sl/unsub",9,"room/lobby"]', "09 09 0a 72 6f 6f 6d 2f 6c 6f 62 62 79", None),
    ('["sl/ok",9,null]', "02 09", UNIT),
    ('["sl/pub","room/lobby","chat/send",{"text":"hi"}]',
     "04 0a 72 6f 6f 6d 2f 6c 6f 62 62 79 92 f8 c2 b7 07 00 02 68 69", None),
    ('["sl/pub","room/lobby","chat/send",{"text":"hi"},{"epoch":"k3x9","offset":42}]', None, None),
    ('["sl/presence",10,"room/lobby",true]', "0c 0a 0a 72 6f 6f 6d 2f 6c 6f 62 62 79 01", None),
    ('["sl/ok",10,{"members":[{"user_id":"ada","info":{"name":"Ada"}},{"user_id":"bob","info":null}]}]',
     None, PRESENCE_SNAPSHOT),
    ('["sl/presence-diff","room/lobby",{"joined":[{"user_id":"cy","info":null}],"left":["bob"]}]',
     "0d 0a 72 6f 6f 6d 2f 6c 6f 62 62 79 01 02 63 79 00 01 03 62 6f 62", None),
    ('["sl/resub",{"channel":"room/lobby"}]', "0e 0a 72 6f 6f 6d 2f 6c 6f 62 62 79", None),
    ('["sl/cancel",7]', "0f 07", None),
    ('["sl/extensions",["cancel"]]', "10 01 06 63 61 6e 63 65 6c", None),
    ('["sl/error",{"code":"bad-event","message":"unknown event `chat/sned`: no handler is routed for it"}]',
     None, None),
    ('["sl/close",{"code":"going-away","message":"server shutting down","reconnect_after_ms":1500}]',
     "0b 0a 67 6f 69 6e 67 2d 61 77 61 79 14 73 65 72 76 65 72 20 73 68 75 74 74 69 6e 67 20 64 "
     "6f 77 6e 01 dc 0b", None),
]


def _type_of(reply_type):
    def payload_type_of(kind, ident):
        if kind == "sl/ok":
            return reply_type
        return codec.ALL_EVENTS[ident][1]
    return payload_type_of


def _payload_type(frame, reply_type):
    name = frame[0]
    if name == "sl/ok":
        return reply_type
    if name == "sl/pub":
        return codec.ALL_EVENTS[frame[2]][1]
    if not name.startswith("sl/"):
        return codec.ALL_EVENTS[name][1]
    return None


async def test_keys_of_section_2():
    assert codec.key_of("chat/send") == 0x76F0BC12
    assert codec.key_of("user/get") == 0xA17A2151
    assert codec.enc_varint(0x76F0BC12) == bytes.fromhex("92f8c2b707"), "the section 4 note on the key"
    for ident in codec.EVENTS:
        assert sum(1 for j in codec.EVENTS if codec.key_of(j) == codec.key_of(ident)) == 1


async def test_examples_are_in_the_document():
    for text, hexs, _ in EXAMPLES:
        assert text in DOC, f"JSON example not in PROTOCOL.md: {text}"
        if hexs:
            assert hexs in DOC, f"postcard example not in PROTOCOL.md: {hexs}"


async def test_json_examples_round_trip():
    for text, _, _ in EXAMPLES:
        frame = codec.json_decode(text)
        assert codec.json_encode(frame) == text, text


async def test_postcard_examples_round_trip():
    for text, hexs, reply_type in EXAMPLES:
        if not hexs:
            continue
        raw = bytes.fromhex(hexs)
        frame, _ = codec.pc_decode(raw, _type_of(reply_type))
        # the same frame as section 3's example
        assert frame == codec.json_decode(text), f"{hexs}\n  decodes to {frame}\n  not {text}"
        assert codec.pc_encode(frame, _payload_type(frame, reply_type)) == raw, text


async def test_json_only_examples_round_trip_through_postcard():
    for text, hexs, reply_type in EXAMPLES:
        if hexs:
            continue
        frame = codec.json_decode(text)
        raw = codec.pc_encode(frame, _payload_type(frame, reply_type))
        back, _ = codec.pc_decode(raw, _type_of(reply_type))
        assert back == frame, text


async def test_overlong_header_varint_refused_by_decoder():
    # Section 4's own example: `83 00` for 3 is not a header's encoding.
    try:
        codec.pc_decode(bytes.fromhex("06 83 00"), _type_of(None))
    except codec.DecodeError:
        pass
    else:
        raise AssertionError("overlong varint decoded")
    assert codec.pc_decode(bytes.fromhex("06 03"), _type_of(None))[0] == ["sl/ping", 3]


async def test_schema_hash_example_of_section_2():
    # The document's example: one line, hashed with 64-bit FNV-1a.
    line = 'chat/ping\tevent\t{"type":"null"}\t\n'.encode()
    h = 0xCBF29CE484222325
    for b in line:
        h = ((h ^ b) * 0x100000001B3) % 2**64
    assert "%016x" % h == "716c4e9cac642e9a"
    assert codec.schema_hash([{"id": "chat/ping", "kind": "event", "payload": {"type": "null"}}]) \
        == "716c4e9cac642e9a"
    assert codec.schema_hash([]) == "cbf29ce484222325"


async def test_canonical_json_of_section_2():
    numbers = [(0, "0"), (-0.0, "0"), (-32768, "-32768"), (1.5, "1.5"), (0.000001, "0.000001"),
               (0.0000001, "1e-7"), (1e21, "1e+21"), (1e20, "100000000000000000000"),
               (18446744073709551615, "18446744073709552000"), (5e-324, "5e-324")]
    for value, text in numbers:
        assert codec.canonical_json(value) == text, (value, codec.canonical_json(value))
    shape = {"type": "object", "properties": {"zeta": {"type": "string", "format": "x"},
                                              "alpha": {"b": 1, "a": 2}}, "required": ["zeta"]}
    assert codec.canonical_json(shape) == (
        '{"properties":{"zeta":{"format":"x","type":"string"},"alpha":{"a":2,"b":1}},'
        '"required":["zeta"],"type":"object"}')
    named = {"properties": {"properties": {"type": "object", "properties": {"b": {}, "a": {}}},
                            "z": {}}}
    assert codec.canonical_json(named) == \
        '{"properties":{"properties":{"properties":{"b":{},"a":{}},"type":"object"},"z":{}}}'
    assert codec.canonical_json({"\ue000": 1, "\U0001f600": 2, 'a"\\\n\x01\x7f\u00e9': 3}) == \
        '{"a\\"\\\\\\n\\u0001\x7f\u00e9":3,"\U0001f600":2,"\ue000":1}'


async def test_presence_snapshot_payload_is_a_vec_of_members():
    # Section 4: the reply's payload is members: Vec<member>, a member user_id: str,
    # info: Option<str> (compact JSON text).
    frame = codec.json_decode('["sl/ok",10,{"members":[{"user_id":"ada","info":{"name":"Ada"}},'
                              '{"user_id":"bob","info":null}]}]')
    info = b'{"name":"Ada"}'
    raw = (bytes.fromhex("02 0a 02 03 61 64 61 01") + bytes([len(info)]) + info
           + bytes.fromhex("03 62 6f 62 00"))
    assert codec.pc_encode(frame, PRESENCE_SNAPSHOT) == raw
    assert codec.pc_decode(raw, _type_of(PRESENCE_SNAPSHOT))[0] == frame
