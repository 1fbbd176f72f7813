"""Section 8, Resubscribe (extension `recovery`): the server's `sl/resub` ends a
subscription whose publications may have been missed; the client subscribes
again with `since` and gets what it missed, as after a reconnect.

The test server's `test/resub` request has the server send it to every
subscriber of a channel (as an engine does when its delivery broke), and
answers how many it told. `news/*` keeps a history of 100 publications and
presence."""

import contextlib

import codec
from harness import Peer
from test_presence import WINDOW, diff, snapshot, subscribed
from test_recovery import news, publish_from, resume

SERVER_ARGS = ()


async def resub_from(c, req_id, ch, told, then_publish=None):
    """test/resub from `c`, which is not subscribed: `told` subscribers were told;
    `then_publish` is published right after, before any of them can be back."""
    f = await c.request(["test/resub", {"channel": ch, "then_publish": then_publish}, req_id])
    assert f == ["sl/ok", req_id, told], f


async def subscribed_after_m1(a, c, ch):
    """`a` subscribes to the new channel `ch`, and `c` publishes `m1` there, which
    `a` receives. Returns the channel's epoch."""
    f = await a.request(["sl/sub", 1, ch])
    epoch = f[2]["position"]["epoch"]
    await publish_from(c, 1, ch, "m1", 1)
    assert await a.recv() == news(ch, "m1", epoch, 1)
    return epoch


async def test_resub_ends_the_subscription_and_since_replays(srv, enc):
    ch = f"news/resub-{enc}"
    async with await Peer.open(srv, enc) as c, await Peer.open(srv, enc) as a:
        epoch = await subscribed_after_m1(a, c, ch)
        await resub_from(c, 2, ch, 1)
        msg = await a.recv_msg()
        # The exact frame of sections 3 and 4.
        if enc == "json":
            assert msg == f'["sl/resub",{{"channel":"{ch}"}}]', msg
        else:
            assert msg == bytes([14, len(ch)]) + ch.encode(), msg.hex(" ")
        assert a.decode(msg) == ["sl/resub", {"channel": ch}]

        # The subscription ended: what is published now reaches nobody...
        await publish_from(c, 3, ch, "m2", 0)
        await publish_from(c, 4, ch, "m3", 0)
        await a.silence(0.2)
        # ... until the client subscribes again from the last position it holds.
        before, reply = await resume(a, 2, ch, {"epoch": epoch, "offset": 1})
        assert before == [news(ch, "m2", epoch, 2), news(ch, "m3", epoch, 3)], before
        assert reply == {"position": {"epoch": epoch, "offset": 3}, "recovered": True}, reply
        await publish_from(c, 5, ch, "m4", 1)
        assert await a.recv() == news(ch, "m4", epoch, 4)
        await a.silence(0.1)


async def test_resub_tells_every_subscriber_of_the_channel_only(srv, enc):
    ch = f"news/resub-all-{enc}"
    async with contextlib.AsyncExitStack() as stack:
        c = await stack.enter_async_context(await Peer.open(srv, enc))
        a = await subscribed(stack, srv, enc, ch)
        b = await subscribed(stack, srv, enc, ch)
        other = await subscribed(stack, srv, enc, f"news/resub-other-{enc}")
        await resub_from(c, 1, ch, 2)
        for p in (a, b):
            assert await p.recv() == ["sl/resub", {"channel": ch}]
        await other.silence(0.1)
        # A channel without subscribers: nobody to tell.
        await resub_from(c, 2, f"news/resub-nobody-{enc}", 0)


async def test_resub_ends_the_presence_watch(srv, enc):
    ch = f"news/resub-watch-{enc}"
    async with contextlib.AsyncExitStack() as stack:
        c = await stack.enter_async_context(await Peer.open(srv, enc))
        w = await subscribed(stack, srv, enc, ch, "ivy")
        assert await w.request(["sl/presence", 2, ch, True]) == snapshot(2, "ivy")
        await resub_from(c, 1, ch, 1)
        assert await w.recv() == ["sl/resub", {"channel": ch}]
        await subscribed(stack, srv, enc, ch, "jon")
        await w.silence(2 * WINDOW)
        # Subscribed again, it watches again by asking.
        assert (await w.request(["sl/sub", 3, ch]))[0] == "sl/ok"
        assert await w.request(["sl/presence", 4, ch, True]) == snapshot(4, "ivy", "jon")
        await subscribed(stack, srv, enc, ch, "kim")
        assert await w.recv() == diff(ch, joined=["kim"])


async def test_resub_encodings_of_sections_3_and_4():
    frame = ["sl/resub", {"channel": "room/lobby"}]
    assert codec.json_encode(frame) == '["sl/resub",{"channel":"room/lobby"}]'
    raw = codec.pc_encode(frame)
    assert raw == bytes.fromhex("0e 0a 72 6f 6f 6d 2f 6c 6f 62 62 79")
    assert codec.pc_decode(raw, None) == (frame, None)


async def test_resub_on_a_channel_without_history_then_a_gap(srv, enc):
    ch = f"plain/resub-gap-{enc}"
    async with await Peer.open(srv, enc) as c, await Peer.open(srv, enc) as a:
        epoch = await subscribed_after_m1(a, c, ch)
        # Published right after the resub, before the client can be back.
        await resub_from(c, 2, ch, 1, then_publish="m2")
        assert await a.recv() == ["sl/resub", {"channel": ch}]
        before, reply = await resume(a, 2, ch, {"epoch": epoch, "offset": 1})
        assert before == [], before
        assert reply == {"position": {"epoch": epoch, "offset": 2}, "recovered": False}, reply
        await publish_from(c, 3, ch, "m3", 1)
        assert await a.recv() == news(ch, "m3", epoch, 3)
