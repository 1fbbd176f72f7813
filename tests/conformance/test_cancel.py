"""Section 7, Cancelling (extension `cancel`): `sl/cancel` stops a request's
handler, frees its place at once and gets no reply; the server cancels its
own requests only to a client that named the extension in `sl/extensions`.

The test server's `test/hold` is never answered and records, under its tag,
whether its handler is `running` or was `dropped` (`test/held` tells, from any
connection); `test/ask-within` asks the client a `test/question` and stops
waiting after `give_up_ms`, answering `gave up`."""

import itertools

from harness import Peer, Server, assert_err, assert_error

SERVER_ARGS = ()

_tags = itertools.count(1)


def tag(enc, what):
    return f"{what}-{enc}-{next(_tags)}"


async def held(p, req_id, t):
    f = await p.request(["test/held", {"tag": t}, req_id])
    assert f[0] == "sl/ok", f
    return f[2]


async def until_held(p, t, state, first_id):
    """Polls `test/held` (ids from `first_id`) until `t` is in `state`."""
    for i in range(200):
        now = await held(p, first_id + i, t)
        if now == state:
            return first_id + i + 1
        assert i < 199, f"{t} is {now}, not {state}"
        await p.silence(0.02)


async def test_cancel_is_offered(srv, enc):
    async with await Peer.open(srv, enc) as p:
        assert "cancel" in p.handshake["extensions"], p.handshake


async def test_a_cancel_drops_the_handler_and_gets_no_reply(srv, enc):
    t = tag(enc, "drop")
    async with await Peer.open(srv, enc) as p:
        await p.send(["test/hold", {"tag": t}, 5])
        n = await until_held(p, t, "running", 100)
        await p.send(["sl/cancel", 5])
        await until_held(p, t, "dropped", n)
        # Cancels of an id no longer held, or never used: ignored, no answer.
        await p.send(["sl/cancel", 5])
        await p.send(["sl/cancel", 123456])
        await p.send(["sl/ping", 9])
        assert await p.recv() == ["sl/pong", 9], "no reply to 5, nothing for the cancels"
        await p.silence(0.2)


async def test_a_cancel_frees_the_in_flight_place_at_once(enc):
    async with Server("--max-in-flight-requests", 1) as srv:
        async with await Peer.open(srv, enc) as p:
            await p.send(["test/hold", {"tag": tag(enc, "place")}, 1])
            f = await p.request(["test/echo", {"text": "x"}, 2])
            assert_err(f, 2, "too-many-requests")
            await p.send(["sl/cancel", 1])
            f = await p.request(["test/echo", {"text": "y"}, 3])
            assert f[0] == "sl/ok" and f[2]["text"] == "y", f


async def test_a_request_cancelled_while_waiting_never_runs(enc):
    first, second = tag(enc, "first"), tag(enc, "second")
    async with Server("--max-concurrent-handlers", 1) as srv:
        async with await Peer.open(srv, enc) as p, await Peer.open(srv, enc) as q:
            await p.send(["test/hold", {"tag": first}, 1])
            n = await until_held(q, first, "running", 1)
            # Waits behind the first (one handler at a time), then is cancelled.
            await p.send(["test/hold", {"tag": second}, 2])
            await p.send(["sl/cancel", 2])
            await p.send(["sl/cancel", 1])
            n = await until_held(q, first, "dropped", n)
            assert await held(q, n, second) == "unknown", "the cancelled request never ran"
            f = await p.request(["test/echo", {"text": "z"}, 3])
            assert f[0] == "sl/ok", f
            await p.silence(0.2)


async def test_malformed_cancels_are_bad_frames(srv, enc):
    async with await Peer.open(srv, enc) as p:
        if enc == "json":
            bad = ['["sl/cancel","7"]', '["sl/cancel"]', '["sl/cancel",7,8]', '["sl/cancel",-1]',
                   '["sl/cancel",9007199254740992]', '["sl/extensions","cancel"]',
                   '["sl/extensions",[1]]']
        else:
            bad = [b"\x0f", b"\x0f\x07\x00", b"\x0f\x87\x00", b"\x10\x01", b"\x10\x01\x01\xff"]
        for frame in bad:
            await p.send_raw(frame)
            assert_error(await p.recv(), "bad-frame")
        f = await p.request(["test/echo", {"text": "still here"}, 1])
        assert f[0] == "sl/ok", f


async def test_the_server_cancels_only_for_a_client_that_opted_in(srv, enc):
    for opted_in in (False, True):
        async with await Peer.open(srv, enc) as p:
            if opted_in:
                # Unknown names are ignored; nothing answers it.
                await p.send(["sl/extensions", ["later-extension", "cancel"]])
            await p.send(["test/ask-within", {"text": "q", "deadline_ms": 10000,
                                              "give_up_ms": 100}, 1])
            question = await p.recv()
            assert question[0] == "test/question" and question[1] == {"text": "q"}, question
            if opted_in:
                assert await p.recv() == ["sl/cancel", question[2]]
            assert await p.recv() == ["sl/ok", 1, "gave up"]
            await p.silence(0.2)
