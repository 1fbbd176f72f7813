"""Sections 7 and 10: the in-flight bound, the handlers and their waiting line,
backpressure, and the message size limit."""

import asyncio
import socket

import codec
from harness import (JSON_PROTO, Peer, RawWS, Server, assert_err, assert_error, json_frames,
                     read_http_response, upgrade_head)


async def test_too_many_requests_at_the_in_flight_bound(enc):
    async with Server("--max-in-flight-requests", 2) as srv:
        async with await Peer.open(srv, enc) as p:
            assert p.handshake["limits"]["max_in_flight"] == 2
            await p.send(["test/slow", {"ms": 700}, 1])
            await p.send(["test/slow", {"ms": 700}, 2])
            await p.send(["test/slow", {"ms": 0}, 3])
            assert_err(await p.recv(), 3, "too-many-requests")
            # the server still answers pings while at the bound
            await p.send(["sl/ping", 9])
            assert await p.recv() == ["sl/pong", 9]
            replies = sorted([await p.recv(), await p.recv()])
            assert replies == [["sl/ok", 1, 700], ["sl/ok", 2, 700]], replies
            # room again
            assert await p.request(["test/slow", {"ms": 0}, 3]) == ["sl/ok", 3, 0]


async def test_requests_waiting_in_line_count_as_in_flight(enc):
    async with Server("--max-concurrent-handlers", 1, "--max-in-flight-requests", 2) as srv:
        async with await Peer.open(srv, enc) as p:
            await p.send(["test/slow", {"ms": 500}, 1])  # running
            await p.send(["test/slow", {"ms": 0}, 2])  # waiting for the handler
            await p.send(["test/slow", {"ms": 0}, 3])
            assert_err(await p.recv(), 3, "too-many-requests")
            assert await p.recv(2.0) == ["sl/ok", 1, 500]
            assert await p.recv(2.0) == ["sl/ok", 2, 0]


async def test_requests_wait_in_line_for_a_handler(enc):
    async with Server("--max-concurrent-handlers", 1) as srv:
        async with await Peer.open(srv, enc) as p:
            await p.send(["test/slow", {"ms": 800}, 1])  # takes the only handler
            await p.send(["test/ask", {"text": "never"}, 2, 200])  # waits; deadline passes
            await p.send(["sl/sub", 3, "news/line"])  # a subscription needs a handler too
            await p.send(["sl/ping", 4])  # answered at once
            assert await p.recv() == ["sl/pong", 4]
            assert_err(await p.recv(2.0), 2, "deadline-exceeded")
            f = await p.recv(3.0)
            assert f == ["sl/ok", 1, 800], f"the subscription did not wait for the handler: {f}"
            f = await p.recv(3.0)
            assert f[:2] == ["sl/ok", 3] and f[2]["position"]["offset"] == 0, f
            # test/ask's handler never ran: no test/question comes
            await p.silence(0.4)


async def test_busy_server_keeps_a_peer_that_answers_pings():
    # One handler, a long request, and more frames than the waiting line holds (256):
    # the server stops reading, and that time is never held against the peer, which
    # answers every ping it gets (silence allowed: 250 + 250 ms, the handler takes 1.5 s).
    args = ("--max-concurrent-handlers", 1, "--ping-interval-ms", 250, "--ping-timeout-ms", 250)
    async with Server(*args) as srv:
        async with await Peer.open(srv, "json") as p:
            await p.send(["test/slow", {"ms": 1500}, 1])
            for seq in range(300):
                await p.send(["test/note", {"client": "busy", "seq": seq}])
            pings = 0
            while True:
                f = await p.recv(3.0)
                if f[0] == "sl/ping":
                    pings += 1
                    await p.send(["sl/pong", f[1]])
                    continue
                assert f == ["sl/ok", 1, 1500], f
                break
            assert pings >= 3, f"only {pings} pings in 1.5 s at a 250 ms interval"
            await p.send(["test/notes", {"client": "busy"}, 2])
            while True:
                f = await p.recv(3.0)
                if f[0] == "sl/ping":
                    await p.send(["sl/pong", f[1]])
                    continue
                assert f == ["sl/ok", 2, list(range(300))], f"notes out of order or lost: {f}"
                break


def echo_of_size(enc, size, req_id=1):
    """A test/echo request whose message is exactly `size` bytes."""
    pad = 0
    while True:
        frame = ["test/echo", {"text": "x" * pad}, req_id]
        raw = codec.json_encode(frame).encode() if enc == "json" else \
            codec.pc_encode(frame, codec.TEXT)
        if len(raw) >= size:
            assert len(raw) == size, "cannot hit the size exactly"
            return frame
        pad += 1


async def test_message_size_limit_too_large_then_1009(enc):
    async with Server("--max-message-size", 1000) as srv:
        async with await Peer.open(srv, enc) as p:
            assert p.handshake["max_message_size"] == 1000
            f = await p.request(echo_of_size(enc, 1000, 1))  # at the limit: taken
            assert f[:2] == ["sl/ok", 1], f
            await p.send(echo_of_size(enc, 1001, 2))
            frames = await p.expect_close(1009)
            assert len(frames) == 1, frames
            assert_error(frames[0], "too-large")


async def test_fragmented_message_over_the_limit_too_large():
    async with Server("--max-message-size", 1000) as srv:
        ws = await RawWS.open(srv)
        try:
            await ws.recv_frame()
            await ws.send(0x1, b'["test/echo",{"text":"' + b"a" * 400, fin=False)
            await ws.send(0x0, b"b" * 400, fin=False)
            await ws.send(0x0, b"c" * 400 + b'"},1]')
            frames, code, end = await ws.recv_until_close()
            decoded = json_frames(frames)
            assert len(decoded) == 1 and decoded[0][0] == "sl/error" \
                and decoded[0][1]["code"] == "too-large", decoded
            assert (code, end) == (1009, "eof"), (code, end)
        finally:
            ws.close()


async def test_slow_consumer_closed_4001():
    # A subscriber that reads nothing (a 4 KiB receive buffer) while ~12 MB are published
    # to it: its outbound queue (1024 messages, 4 MiB) fills and it is closed with 4001.
    async with Server("--rate-per-sec", 0) as srv:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (srv.host, srv.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(upgrade_head(srv, protocols=JSON_PROTO))
        await writer.drain()
        assert (await read_http_response(reader))[0] == 101
        ws = RawWS(reader, writer)
        try:
            await ws.recv_frame()
            await ws.send_text('["sl/sub",1,"news/slow"]')
            op, payload = await ws.recv_frame()
            assert payload.startswith(b'["sl/ok",1,'), payload
            reached = []
            async with await Peer.open(srv, "json") as pub:
                for i in range(60):
                    f = await pub.request(["test/publish", {"channel": "news/slow",
                                                            "text": "z" * 200_000}, i], 10)
                    reached.append(f[2])
            # dropped on the way: the last publications reached nobody
            assert reached[0] == 1 and reached[-1] == 0, reached
            frames, code, end = await ws.recv_until_close(timeout=10)
            pubs = json_frames(frames)
            assert all(f[0] == "sl/pub" for f in pubs[:-1]), [f[0] for f in pubs]
            offsets = [f[4]["offset"] for f in pubs if f[0] == "sl/pub"]
            assert offsets == list(range(1, len(offsets) + 1)), offsets
            assert code == 4001 and end == "eof", (code, end)
        finally:
            ws.close()


async def test_too_large_close_frame_arrives_despite_more_input():
    # The server drops what follows a message over the limit (until 100 ms of quiet):
    # the close frame reaches a client still sending, and the stream then ends cleanly.
    async with Server("--max-message-size", 1000) as srv:
        ws = await RawWS.open(srv)
        try:
            await ws.recv_frame()  # the handshake
            await ws.send(0x1, b'["test/echo",{"text":"' + b"y" * 3000 + b'"},1]')
            for i in range(10):
                await ws.send(0x1, b'["test/echo",{"text":"more"},%d]' % (i + 2))
                await asyncio.sleep(0.01)
            frames, code, end = await ws.recv_until_close()
            decoded = json_frames(frames)
            assert len(decoded) == 1 and decoded[0][0] == "sl/error" \
                and decoded[0][1]["code"] == "too-large", decoded
            assert code == 1009, code
            assert end == "eof", end
        finally:
            ws.close()


async def test_events_sent_just_before_a_close_are_handled(enc):
    # Section 5, Closing: when the peer closes, the server still runs the
    # handlers of the frames it had read, so the last notes are not lost with
    # the connection (their close frame arrives right behind them).
    client = f"before-close-{enc}"
    async with Server() as srv:
        p = await Peer.open(srv, enc)
        for seq in range(200):
            await p.send(["test/note", {"client": client, "seq": seq}])
        await p.close()
        async with await Peer.open(srv, enc) as q:
            for attempt in range(50):
                f = await q.request(["test/notes", {"client": client}, attempt + 1])
                if f[2] == list(range(200)):
                    break
                await asyncio.sleep(0.02)
            assert f == ["sl/ok", attempt + 1, list(range(200))], f"notes lost with the close: {f}"
