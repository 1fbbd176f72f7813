"""Section 9 (violations) and section 10 (the inbound rate limit)."""

import asyncio

from codec import U64, enc_varint, key_of
from harness import Peer, Server, assert_err, assert_error

SERVER_ARGS = ()


def bad_frame(enc):
    return '["sl/nope",1]' if enc == "json" else b"\x0e"


async def test_twenty_violations_then_1008(srv, enc):
    async with await Peer.open(srv, enc) as p:
        for _ in range(20):
            await p.send_raw(bad_frame(enc))
            assert_error(await p.recv(), "bad-frame")
        assert (await p.request(["test/echo", {"text": "still"}, 1]))[0] == "sl/ok"
        await p.send_raw(bad_frame(enc))
        frames = await p.expect_close(1008)
        # the answer to the frame comes first
        assert len(frames) == 1, frames
        assert_error(frames[0], "bad-frame")


async def test_violations_of_every_kind_counted(enc):
    args = ("--max-violations", 5, "--violation-refill-ms", 600000, "--max-in-flight-requests", 2)
    async with Server(*args) as srv:
        async with await Peer.open(srv, enc) as p:
            await p.send_raw(bad_frame(enc))
            assert_error(await p.recv(), "bad-frame")  # 1
            await p.send(["test/echo", {"text": "as an event"}])
            assert_error(await p.recv(), "bad-event")  # 2: the wrong kind
            if enc == "json":
                await p.send_raw('["test/slow",{"ms":"x"},9]')
            else:
                await p.send_raw(b"\x01" + enc_varint(key_of("test/slow")) + b"\x09\x00\x02xx")
            p.expect_reply(9, U64)
            assert_err(await p.recv(), 9, "bad-payload")  # 3
            await p.send(["test/slow", {"ms": 1000}, 1])
            await p.send(["test/slow", {"ms": 0}, 1])
            assert_err(await p.recv(), 1, "duplicate-request")  # 4
            await p.send(["test/slow", {"ms": 1000}, 2])
            await p.send(["test/slow", {"ms": 0}, 3])
            assert_err(await p.recv(), 3, "too-many-requests")  # 5
            await p.send(["sl/ping", 1])
            assert await p.recv() == ["sl/pong", 1]  # still open
            await p.send_raw(bad_frame(enc))  # 6: past the allowance
            frames = await p.expect_close(1008)
            assert len(frames) == 1, frames
            assert_error(frames[0], "bad-frame")


async def test_unknown_events_are_not_violations(enc):
    async with Server("--max-violations", 2, "--violation-refill-ms", 600000) as srv:
        async with await Peer.open(srv, enc) as p:
            for i in range(12):
                if enc == "json":
                    await p.send_raw('["test/unknown",{}]')
                    await p.send_raw(f'["test/unknown",{{}},{i}]')
                else:
                    await p.send_raw(b"\x00\x07")  # key 7: no such event
                    await p.send_raw(b"\x01\x07" + bytes([i]) + b"\x00")
                assert_error(await p.recv(), "bad-event")
                assert_err(await p.recv(), i, "bad-event")
            assert (await p.request(["test/echo", {"text": "on"}, 100]))[0] == "sl/ok"
            # the allowance (2) is all there
            for _ in range(2):
                await p.send_raw(bad_frame(enc))
                assert_error(await p.recv(), "bad-frame")
            await p.send(["sl/ping", 5])
            assert await p.recv() == ["sl/pong", 5]
            await p.send_raw(bad_frame(enc))
            assert len(await p.expect_close(1008)) == 1


async def test_allowance_grows_back():
    async with Server("--max-violations", 2, "--violation-refill-ms", 200) as srv:
        async with await Peer.open(srv, "json") as p:
            for _ in range(2):
                await p.send_raw(bad_frame("json"))
                assert_error(await p.recv(), "bad-frame")
            await asyncio.sleep(0.6)  # at least one back
            await p.send_raw(bad_frame("json"))
            assert_error(await p.recv(), "bad-frame")
            assert (await p.request(["test/echo", {"text": "on"}, 1]))[0] == "sl/ok"


async def test_rate_limit_answers_ids_and_drops(enc):
    args = ("--rate-per-sec", 1, "--rate-burst", 4, "--max-violations", 100)
    async with Server(*args) as srv:
        async with await Peer.open(srv, enc) as p:
            assert p.handshake["limits"]["rate_per_sec"] == 1
            assert p.handshake["limits"]["rate_burst"] == 4
            client = f"rate-{enc}"
            for i in range(1, 5):
                await p.send(["test/echo", {"text": str(i)}, i])
            await p.send(["test/echo", {"text": "5"}, 5])
            await p.send(["sl/sub", 6, "news/rate"])
            await p.send(["sl/unsub", 7, "news/rate"])
            await p.send(["sl/presence", 8, "news/rate", False])
            await p.send(["test/note", {"client": client, "seq": 1}])
            await p.send(["sl/ping", 9])
            await p.send(["test/note", {"client": client, "seq": 2}])
            # (replies to different requests may come in any order)
            got = await p.recv_n(9)
            oks = sorted(f[1] for f in got if f[0] == "sl/ok")
            assert oks == [1, 2, 3, 4], got
            for f in got:
                if f[0] == "sl/ok":
                    assert f[2]["text"] == str(f[1]), f
            errs = sorted((f for f in got if f[0] == "sl/err"), key=lambda f: f[1])
            assert [f[1] for f in errs] == [5, 6, 7, 8], got
            for f in errs:
                assert_err(f, f[1], "rate-limited")
            # the dropped note, ping, note: one sl/error per second at most
            errors = [f for f in got if f[0] == "sl/error"]
            assert len(errors) == 1, got
            assert_error(errors[0], "rate-limited")
            await p.silence(0.5)
            await asyncio.sleep(0.7)  # a token back
            f = await p.request(["test/notes", {"client": client}, 10])
            assert f == ["sl/ok", 10, []], f"a dropped note was handled: {f}"


async def test_rate_limited_frames_are_violations(enc):
    args = ("--rate-per-sec", 1, "--rate-burst", 2, "--max-violations", 2,
            "--violation-refill-ms", 600000)
    async with Server(*args) as srv:
        async with await Peer.open(srv, enc) as p:
            for i in range(1, 6):
                await p.send(["test/slow", {"ms": 0}, i])
            frames = await p.expect_close(1008)
            # two requests pass, three are dropped: the third drop is past the allowance.
            # (The replies to the two that passed may be lost in the close: section 5 only
            # says that requests in flight when a connection ends fail.)
            oks = [f for f in frames if f[0] == "sl/ok"]
            assert all(f in (["sl/ok", 1, 0], ["sl/ok", 2, 0]) for f in oks), frames
            errs = [f for f in frames if f[0] == "sl/err"]
            assert [f[1] for f in errs] == [3, 4, 5], frames
            for f in errs:
                assert_err(f, f[1], "rate-limited")


async def test_each_silently_dropped_frame_is_a_violation():
    # Events dropped by the rate limit get one sl/error a second, but each is a violation.
    args = ("--rate-per-sec", 1, "--rate-burst", 1, "--max-violations", 2,
            "--violation-refill-ms", 600000)
    async with Server(*args) as srv:
        async with await Peer.open(srv, "json") as p:
            await p.send(["test/note", {"client": "dropped", "seq": 0}])  # the one token
            for seq in (1, 2, 3):
                await p.send(["test/note", {"client": "dropped", "seq": seq}])
            frames = await p.expect_close(1008)
            assert len(frames) == 1, frames
            assert_error(frames[0], "rate-limited")
