"""Sections 1, 2, 3/4 (handshake) and 5 (opening): subprotocols, the handshake's
fields, decoding by message type, early frames."""

import json

from websockets.asyncio.client import connect

import codec
from harness import (JSON_PROTO, POSTCARD_PROTO, Peer, RawWS, Server, http, json_frames,
                     open_status, upgrade_head)

SERVER_ARGS = ()

HANDSHAKE_KEYS = ["version", "conn_id", "user_id", "heartbeat", "schema_hash",
                  "max_message_size", "extensions", "limits"]
LIMIT_KEYS = ["max_in_flight", "rate_per_sec", "rate_burst", "max_subscriptions",
              "max_channel_name"]


def check_handshake(h, user_id, interval=25000, timeout=10000, max_message_size=1048576,
                    limits=(64, 200, 400, 256, 256)):
    assert list(h) == HANDSHAKE_KEYS, f"handshake fields {list(h)}"
    assert h["version"] == 1
    assert isinstance(h["conn_id"], int) and h["conn_id"] >= 0
    assert h["user_id"] == user_id
    assert h["heartbeat"] == {"interval_ms": interval, "timeout_ms": timeout}
    assert list(h["heartbeat"]) == ["interval_ms", "timeout_ms"]
    # Its value is checked against the published description in test_schema.
    assert len(h["schema_hash"]) == 16 and all(c in "0123456789abcdef" for c in h["schema_hash"])
    assert h["max_message_size"] == max_message_size
    assert sorted(h["extensions"]) == ["cancel", "presence", "recovery"], h["extensions"]  # section 11
    assert list(h["limits"]) == LIMIT_KEYS
    assert h["limits"] == dict(zip(LIMIT_KEYS, limits)), h["limits"]


async def test_handshake_defaults(srv, enc):
    async with await Peer.open(srv, enc, name="ada") as p:
        check_handshake(p.handshake, "ada")
        if enc == "postcard":
            assert p.handshake_rest == b"", f"bytes after the handshake: {p.handshake_rest.hex()}"
    async with await Peer.open(srv, enc) as p:
        check_handshake(p.handshake, None)


async def test_handshake_announces_configured_limits(enc):
    args = ("--ping-interval-ms", 7000, "--ping-timeout-ms", 3000, "--max-message-size", 5000,
            "--max-in-flight-requests", 3, "--rate-per-sec", 50, "--rate-burst", 60,
            "--max-subscriptions", 4, "--max-channel-name", 32)
    async with Server(*args) as srv:
        async with await Peer.open(srv, enc, name="bo") as p:
            check_handshake(p.handshake, "bo", interval=7000, timeout=3000,
                            max_message_size=5000, limits=(3, 50, 60, 4, 32))
    async with Server("--rate-per-sec", 0) as srv:
        async with await Peer.open(srv, enc) as p:
            assert p.handshake["limits"]["rate_per_sec"] == 0, "no rate limit is announced as 0"


async def test_conn_id_is_the_connections(srv, enc):
    async with await Peer.open(srv, enc, name="ada") as a, await Peer.open(srv, enc) as b:
        assert a.handshake["conn_id"] != b.handshake["conn_id"]
        f = await a.request(["test/echo", {"text": "hi"}, 1])
        assert f == ["sl/ok", 1, {"text": "hi", "conn_id": a.handshake["conn_id"], "user_id": "ada"}]
        f = await b.request(["test/echo", {"text": "yo"}, 1])
        assert f == ["sl/ok", 1, {"text": "yo", "conn_id": b.handshake["conn_id"], "user_id": None}]


async def test_no_subprotocol_gets_json_and_no_echo(srv):
    async with await Peer.open(srv, "none") as p:
        assert p.ws.subprotocol is None
        assert p.ws.response.headers.get("Sec-WebSocket-Protocol") is None
        check_handshake(p.handshake, None)  # decoded as text: JSON


async def test_subprotocol_preference_order(srv):
    cases = [
        ([POSTCARD_PROTO, JSON_PROTO], POSTCARD_PROTO),
        ([JSON_PROTO, POSTCARD_PROTO], JSON_PROTO),
        (["x-unknown.v9", POSTCARD_PROTO, JSON_PROTO], POSTCARD_PROTO),
        (["sente-lite.json.v2", JSON_PROTO], JSON_PROTO),
    ]
    for offered, chosen in cases:
        async with await Peer.open(srv, "json", subprotocols=offered) as p:
            assert p.ws.subprotocol == chosen, f"offered {offered}: got {p.ws.subprotocol}"
            assert p.enc == ("postcard" if chosen == POSTCARD_PROTO else "json")
            check_handshake(p.handshake, None)


async def test_subprotocols_in_several_header_lines(srv):
    head = upgrade_head(srv, extra=["Sec-WebSocket-Protocol: mqtt",
                                    f"Sec-WebSocket-Protocol: {POSTCARD_PROTO}, {JSON_PROTO}"])
    status, headers, _ = await http(srv, head)
    assert status == 101 and headers.get("sec-websocket-protocol") == [POSTCARD_PROTO], headers


async def test_compression_offered_still_works(srv):
    # `compression` is a planned extension, negotiated by the WebSocket layer: a client
    # offering permessage-deflate works whether or not the server takes it.
    async with connect(srv.url, subprotocols=[JSON_PROTO], compression="deflate",
                       ping_interval=None) as ws:
        hs = json.loads(await ws.recv())
        assert hs[0] == "sl/handshake"
        await ws.send('["test/echo",{"text":"' + "z" * 300 + '"},1]')
        f = json.loads(await ws.recv())
        assert f[:2] == ["sl/ok", 1] and f[2]["text"] == "z" * 300


async def test_only_unknown_subprotocols_refused_400(srv):
    assert await open_status(srv, subprotocols=["sente-lite.json.v2"]) == 400
    assert await open_status(srv, subprotocols=["chat", "superchat"]) == 400
    status, _, body = await http(srv, upgrade_head(srv, protocols="mqtt"))
    assert status == 400
    assert body and b"\n" not in body.rstrip(b"\r\n"), f"not a one-line body: {body!r}"


async def test_decode_by_message_type(srv):
    # A binary request on a JSON connection, and a text request on a postcard connection:
    # each is decoded by its message type, and answered in the connection's encoding.
    async with await Peer.open(srv, "json") as p:
        await p.send(["test/echo", {"text": "bin"}, 3], enc="postcard")
        f = await p.recv()  # Peer.recv refuses a binary message on a JSON connection
        assert f == ["sl/ok", 3, {"text": "bin", "conn_id": p.handshake["conn_id"], "user_id": None}]
    async with await Peer.open(srv, "postcard") as p:
        await p.send(["test/echo", {"text": "txt"}, 4], enc="json")
        f = await p.recv()
        assert f == ["sl/ok", 4, {"text": "txt", "conn_id": p.handshake["conn_id"], "user_id": None}]
        await p.send_raw('["sl/ping",77]')
        assert await p.recv() == ["sl/pong", 77]


async def test_early_frames_read_after_the_handshake(srv):
    # Section 5.2: this server reads what arrives before the handshake in order, after it.
    early = RawWS.frame(0x1, b'["test/echo",{"text":"early"},1]') + RawWS.frame(0x1, b'["sl/ping",5]')
    ws = await RawWS.open(srv, early=early)
    try:
        frames = [await ws.recv_frame() for _ in range(3)]
        decoded = json_frames(frames)
        assert decoded[0][0] == "sl/handshake", decoded
        # the pong may overtake the reply (section 6: pings are answered ahead of queued frames)
        rest = sorted(decoded[1:], key=lambda f: f[0])
        assert rest[0][:2] == ["sl/ok", 1] and rest[0][2]["text"] == "early", decoded
        assert rest[1] == ["sl/pong", 5], decoded
    finally:
        ws.close()


async def test_json_with_escapes_and_spaces_accepted(srv):
    async with await Peer.open(srv, "json") as p:
        await p.send_raw(' [ "test\\/echo" , { "text" : "a\\u0062" } , 6 ] ')
        p.expect_reply(6, codec.ECHOED)
        f = await p.recv()
        assert f == ["sl/ok", 6, {"text": "ab", "conn_id": p.handshake["conn_id"], "user_id": None}]
        await p.send_raw('["\\u0074est/echo",{"text":"c"},7]')
        p.expect_reply(7, codec.ECHOED)
        assert (await p.recv())[:2] == ["sl/ok", 7]


async def test_unknown_object_fields_ignored(srv):
    # Section 3: "ignore unknown fields" - in a since position sent by the client.
    async with await Peer.open(srv, "json") as p:
        f = await p.request(["sl/sub", 1, "news/fields"])
        pos = f[2]["position"]
        since = json.dumps({"epoch": pos["epoch"], "offset": pos["offset"], "later": [1]})
        await p.send_raw(f'["sl/sub",2,"news/fields",{since}]')
        f = await p.recv()
        assert f[:2] == ["sl/ok", 2] and f[2]["recovered"] is True, f
