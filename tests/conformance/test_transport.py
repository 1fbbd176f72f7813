"""Sections 1, 5 and 6 below the protocol: close codes for broken WebSocket input,
the server's heartbeat and the 4000 close for a silent peer."""

import asyncio

from harness import Peer, RawWS, Server, background

SERVER_ARGS = ()


async def broken(srv, *frames):
    """Send raw WebSocket frames after the handshake; return (frames, close code, end)."""
    ws = await RawWS.open(srv)
    try:
        await ws.recv_frame()  # the handshake
        for f in frames:
            ws.writer.write(f)
        await ws.writer.drain()
        return await ws.recv_until_close()
    finally:
        ws.close()


async def test_text_not_utf8_closes_1007(srv):
    for payload in (b'["test/echo",{"text":"\xff\xfe"},1]', b"\xc3\x28", b"\xed\xa0\x80"):
        frames, code, end = await broken(srv, RawWS.frame(0x1, payload))
        assert (frames, code, end) == ([], 1007, "eof"), (payload, frames, code, end)


async def test_fragmented_text_not_utf8_closes_1007(srv):
    # the message is checked whole: a character split across fragments is fine,
    # an invalid sequence across fragments is not
    ws = await RawWS.open(srv)
    try:
        await ws.recv_frame()
        await ws.send(0x1, b'["test/echo",{"text":"\xc3', fin=False)
        await ws.send(0x0, b'\xa9"},1]')
        op, payload = await ws.recv_frame()
        assert op == 0x1 and "é" in payload.decode(), payload
    finally:
        ws.close()
    frames, code, end = await broken(srv, RawWS.frame(0x1, b'["a",\xc3', fin=False),
                                     RawWS.frame(0x0, b"\x28]"))
    assert (frames, code, end) == ([], 1007, "eof"), (frames, code, end)


async def test_websocket_protocol_errors_close_1002(srv):
    cases = {
        "reserved opcode 0x3": [RawWS.frame(0x3, b"x")],
        "reserved control opcode 0xB": [RawWS.frame(0xB, b"")],
        "unmasked client frame": [RawWS.frame(0x1, b'["sl/ping",1]', mask=False)],
        "RSV1 without an extension": [RawWS.frame(0x1, b'["sl/ping",1]', rsv=4)],
        "continuation with nothing to continue": [RawWS.frame(0x0, b"x")],
        "new message inside a fragmented one": [RawWS.frame(0x1, b"[", fin=False),
                                                RawWS.frame(0x1, b"[]")],
        "fragmented control frame": [RawWS.frame(0x9, b"x", fin=False)],
        "control frame over 125 bytes": [RawWS.frame(0x9, b"x" * 126)],
    }
    for name, frames in cases.items():
        got, code, end = await broken(srv, *frames)
        assert (got, code, end) == ([], 1002, "eof"), (name, got, code, end)


async def test_protocol_error_close_frame_arrives_despite_more_input(srv):
    ws = await RawWS.open(srv)
    try:
        await ws.recv_frame()
        await ws.send(0x1, b'["sl/ping",1]', mask=False)
        for _ in range(8):
            ws.writer.write(b"\x81\x05hello")
            await asyncio.sleep(0.01)
        frames, code, end = await ws.recv_until_close()
        assert (frames, code, end) == ([], 1002, "eof"), (frames, code, end)
    finally:
        ws.close()


async def test_websocket_ping_answered(srv):
    ws = await RawWS.open(srv)
    try:
        await ws.recv_frame()
        await ws.send(0x9, b"are you there")
        assert await ws.recv_frame() == (0xA, b"are you there")
    finally:
        ws.close()


HEARTBEAT = ("--ping-interval-ms", 300, "--ping-timeout-ms", 300)


async def still_answered(p):
    """A request is answered (a ping of the server's may come before the reply)."""
    await p.send(["test/echo", {"text": "alive"}, 1])
    f = await p.recv()
    while f[0] == "sl/ping":
        f = await p.recv()
    assert f[:2] == ["sl/ok", 1], f


@background
async def test_server_pings_from_1_and_keeps_a_peer_that_answers():
    async with Server(*HEARTBEAT) as srv:
        async with await Peer.open(srv, "json") as p:
            assert p.handshake["heartbeat"] == {"interval_ms": 300, "timeout_ms": 300}
            seen = []
            loop = asyncio.get_running_loop()
            end = loop.time() + 2.5  # four times the allowed silence
            while loop.time() < end:
                f = await p.recv(2.0)
                assert f[0] == "sl/ping", f
                seen.append(f[1])
                await p.send(["sl/pong", f[1]])
            assert seen[0] == 1 and seen == sorted(set(seen)), seen
            assert len(seen) >= 4, seen
            await still_answered(p)


@background
async def test_silent_peer_closed_4000():
    async with Server(*HEARTBEAT) as srv:
        async with await Peer.open(srv, "postcard") as p:
            loop = asyncio.get_running_loop()
            start = loop.time()
            frames = await p.expect_close(4000, timeout=3.0)
            took = loop.time() - start
            assert took >= 0.5, f"closed after {took:.2f} s, before 300 + 300 ms of silence"
            # before the close: pings (and, if any, an sl/close last)
            names = [f[0] for f in frames]
            assert set(names[:-1]) <= {"sl/ping"} and names[-1] in ("sl/ping", "sl/close"), frames
            assert frames[0] == ["sl/ping", 1], frames


@background
async def test_websocket_pings_are_signs_of_life():
    async with Server(*HEARTBEAT) as srv:
        async with await Peer.open(srv, "json") as p:
            loop = asyncio.get_running_loop()
            end = loop.time() + 2.0
            pings = 0
            while loop.time() < end:
                await p.ws.ping()  # a WebSocket ping, never an sl/pong
                try:
                    f = await p.recv(0.15)
                    assert f[0] == "sl/ping", f
                    pings += 1
                except AssertionError as e:
                    if "nothing received" not in str(e):
                        raise
            assert pings >= 2
            await still_answered(p)


@background
async def test_data_frames_are_signs_of_life():
    async with Server(*HEARTBEAT) as srv:
        async with await Peer.open(srv, "json") as p:
            loop = asyncio.get_running_loop()
            end = loop.time() + 2.0
            seq = 0
            while loop.time() < end:
                seq += 1
                await p.send(["test/note", {"client": "alive", "seq": seq}])  # never an sl/pong
                try:
                    f = await p.recv(0.15)
                    assert f[0] == "sl/ping", f
                except AssertionError as e:
                    if "nothing received" not in str(e):
                        raise
            await still_answered(p)
