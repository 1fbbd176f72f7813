"""Section 5, Draining: what a client sees when the server shuts down (SIGTERM)."""

import asyncio

from harness import Peer, Server, assert_err, assert_error, read_http_response, upgrade_head


async def until_draining(p, first_id=100):
    """Send test/echo until one is answered `shutting-down`; returns the other frames."""
    others = []
    rid = first_id
    while True:
        await p.send(["test/echo", {"text": "poll"}, rid])
        while True:
            f = await p.recv(3.0)
            if f[0] in ("sl/ok", "sl/err") and f[1] == rid:
                break
            others.append(f)
        if f[0] == "sl/err":
            assert_err(f, rid, "shutting-down")
            return others
        rid += 1
        assert rid < first_id + 100, "the server never drained"
        await asyncio.sleep(0.03)


def check_close_last(frames, spread):
    assert frames and frames[-1][0] == "sl/close", f"sl/close is not last: {frames}"
    c = frames[-1][1]
    assert list(c) == ["code", "message", "reconnect_after_ms"], c
    assert c["code"] == "going-away" and c["message"] == "server shutting down", c
    n = c["reconnect_after_ms"]
    assert isinstance(n, int) and 0 <= n <= spread, f"reconnect_after_ms {n} past {spread}"


async def test_drain(enc):
    async with Server("--reconnect-spread-ms", 300, "--drain-deadline-ms", 4000) as srv:
        async with await Peer.open(srv, enc) as p:
            await p.send(["test/ask", {"text": "still there?"}, 1])
            q = await p.recv()
            assert q[0] == "test/question", q
            await p.send(["test/slow", {"ms": 1500}, 2])
            # HTTP connections opened before the drain (new ones are not taken at all:
            # the listener closes, see the README)
            conns = [await asyncio.open_connection(srv.host, srv.port) for _ in range(4)]
            await p.send(["sl/ping", 1])
            assert await p.recv() == ["sl/pong", 1]
            srv.terminate()
            seen = await until_draining(p)
            # new work is refused
            await p.send(["sl/sub", 201, "news/drain"])
            assert_err(await p.recv(), 201, "shutting-down")
            await p.send(["sl/unsub", 202, "news/drain"])
            assert_err(await p.recv(), 202, "shutting-down")
            await p.send(["sl/presence", 204, "news/drain", True])
            assert_err(await p.recv(), 204, "shutting-down")
            await p.send(["test/note", {"client": "drain", "seq": 1}])
            assert_error(await p.recv(), "shutting-down")
            await p.send(["test/slow", {"ms": 0}, 203, 1000])
            assert_err(await p.recv(), 203, "shutting-down")
            # pings are answered
            await p.send(["sl/ping", 42])
            assert await p.recv() == ["sl/pong", 42]
            # upgrades are refused with 503, after the version and key checks, before the
            # origin and the authentication
            heads = [upgrade_head(srv), upgrade_head(srv, origin="http://evil.example"),
                     upgrade_head(srv, path="/ws?name=intruder"), upgrade_head(srv, version="12")]
            for (reader, writer), head, want in zip(conns, heads, [503, 503, 503, 400]):
                writer.write(head)
                await writer.drain()
                status, _, body = await read_http_response(reader)
                writer.close()
                assert status == want, f"{head!r}: {status}, want {want}"
                assert body.strip() and b"\n" not in body.strip(), body
            # the reply to the server's own request is taken: test/ask is answered
            await p.send(["sl/ok", q[2], "yes"])
            frames = seen + await p.expect_close(1001, timeout=6.0)
            # the running handlers finished and were answered; then sl/close, last
            check_close_last(frames, 300)
            body = frames[:-1]
            assert ["sl/ok", 1, "yes"] in body, frames
            assert ["sl/ok", 2, 1500] in body, frames
            assert all(f[0] == "sl/ok" for f in body), frames
        assert await srv.wait_exit(5) == 0


async def test_drain_finishes_frames_waiting_for_a_handler(enc):
    args = ("--max-concurrent-handlers", 1, "--reconnect-spread-ms", 0, "--drain-deadline-ms", 4000)
    async with Server(*args) as srv:
        async with await Peer.open(srv, enc) as p:
            await p.send(["test/slow", {"ms": 600}, 1])
            await p.send(["test/slow", {"ms": 10}, 2])
            await p.send(["sl/sub", 3, "news/waiting"])
            await p.send(["sl/ping", 4])
            assert await p.recv() == ["sl/pong", 4]  # all read
            srv.terminate()
            frames = await p.expect_close(1001, timeout=6.0)
            check_close_last(frames, 0)
            assert frames[0] == ["sl/ok", 1, 600], frames
            assert frames[1] == ["sl/ok", 2, 10], frames
            assert frames[2][:2] == ["sl/ok", 3], frames
            assert len(frames) == 4, frames


async def test_drain_gives_up_past_its_deadline(enc):
    async with Server("--reconnect-spread-ms", 100, "--drain-deadline-ms", 400) as srv:
        async with await Peer.open(srv, enc) as p:
            await p.send(["test/slow", {"ms": 8000}, 1])
            await p.send(["sl/ping", 2])
            assert await p.recv() == ["sl/pong", 2]
            srv.terminate()
            frames = await p.expect_close(1001, timeout=4.0)
            # the handler still running is given up without an answer
            assert len(frames) == 1, frames
            check_close_last(frames, 100)
        assert await srv.wait_exit(5) == 0
