"""Section 8, Recovery: `since`, the replay of missed publications before the
reply, `recovered: false` and its reasons, and the offsets that follow.

The server keeps a history of 100 publications on `news/*`."""

from harness import Peer

SERVER_ARGS = ()
HISTORY = 100


def news(ch, text, epoch, offset):
    return ["sl/pub", ch, "test/news", {"text": text}, {"epoch": epoch, "offset": offset}]


async def new_channel(srv, enc, ch, published=0):
    """A connection that publishes on `ch` without being subscribed, and the channel's
    epoch, after it published `m1` .. `m{published}` (offsets 1 ..= published)."""
    c = await Peer.open(srv, enc)
    f = await c.request(["sl/sub", 1, ch])
    assert f[2]["position"]["offset"] == 0, f"not a new channel: {f}"
    await c.request(["sl/unsub", 2, ch])
    for i in range(1, published + 1):
        await publish_from(c, i, ch, f"m{i}")
    return c, f[2]["position"]["epoch"]


async def publish_from(c, req_id, ch, text, reached=0):
    f = await c.request(["test/publish", {"channel": ch, "text": text}, req_id])
    assert f == ["sl/ok", req_id, reached], f


async def until_reply(p, req_id):
    """The frames read before the reply to `req_id`, and the reply."""
    before = []
    while True:
        f = await p.recv()
        if f[0] in ("sl/ok", "sl/err") and f[1] == req_id:
            return before, f
        before.append(f)


async def resume(p, req_id, ch, since):
    """sl/sub with `since`: (the frames before the reply, the reply's payload)."""
    await p.send(["sl/sub", req_id, ch, since])
    before, f = await until_reply(p, req_id)
    assert f[0] == "sl/ok" and list(f[2]) == ["position", "recovered"], f
    return before, f[2]


def check_recovered(reply, epoch, since, last):
    """`recovered: true`; the reply's position is at or after `since`, in the epoch,
    and not past the last publication."""
    assert reply["recovered"] is True, reply
    pos = reply["position"]
    assert pos["epoch"] == epoch and since <= pos["offset"] <= last, (reply, since, last)


async def test_replay_in_order_once_before_the_reply(srv, enc):
    ch = f"news/replay-{enc}"
    c, epoch = await new_channel(srv, enc, ch)
    async with c:
        async with await Peer.open(srv, enc) as a:
            await a.request(["sl/sub", 1, ch])
            for i in (1, 2):
                await publish_from(c, i, ch, f"m{i}", 1)
                assert await a.recv() == news(ch, f"m{i}", epoch, i)
        # the last subscriber closed: the channel is empty while it is published to
        for i in (3, 4, 5):
            await publish_from(c, i, ch, f"m{i}")
        async with await Peer.open(srv, enc) as b:
            before, reply = await resume(b, 1, ch, {"epoch": epoch, "offset": 2})
            assert before == [news(ch, f"m{i}", epoch, i) for i in (3, 4, 5)], before
            check_recovered(reply, epoch, 2, 5)
            # new publications follow, consecutively; nothing is sent twice
            await publish_from(c, 6, ch, "m6", 1)
            assert await b.recv() == news(ch, "m6", epoch, 6)
            await b.silence(0.1)
        # from the position of a subscribe reply before any publication: everything
        async with await Peer.open(srv, enc) as d:
            before, reply = await resume(d, 1, ch, {"epoch": epoch, "offset": 0})
            assert before == [news(ch, f"m{i}", epoch, i) for i in range(1, 7)], before
            check_recovered(reply, epoch, 0, 6)
            await d.silence(0.1)


async def test_since_at_the_current_position(srv, enc):
    ch = f"news/current-{enc}"
    c, epoch = await new_channel(srv, enc, ch)
    async with c, await Peer.open(srv, enc) as b:
        # nothing published in the epoch: the position of the subscribe reply, offset 0
        before, reply = await resume(b, 1, ch, {"epoch": epoch, "offset": 0})
        assert before == [] and reply == {"position": {"epoch": epoch, "offset": 0},
                                          "recovered": True}, (before, reply)
        await publish_from(c, 1, ch, "one", 1)
        assert await b.recv() == news(ch, "one", epoch, 1)
        await b.request(["sl/unsub", 2, ch])
        await publish_from(c, 2, ch, "two")
        before, reply = await resume(b, 3, ch, {"epoch": epoch, "offset": 2})
        assert before == [] and reply == {"position": {"epoch": epoch, "offset": 2},
                                          "recovered": True}, (before, reply)
        await publish_from(c, 3, ch, "three", 1)
        assert await b.recv() == news(ch, "three", epoch, 3)
        await b.silence(0.1)


async def not_recovered(srv, enc, c, ch, since, position, req_id):
    """A new connection subscribes with `since` and is answered `recovered: false`
    at `position`, with nothing replayed; the next publication (published by `c`
    with `req_id`) follows the position."""
    async with await Peer.open(srv, enc) as b:
        await b.send(["sl/sub", 1, ch, since])
        f = await b.recv()
        assert f == ["sl/ok", 1, {"position": position, "recovered": False}], (since, f)
        await publish_from(c, req_id, ch, f"after {req_id}", 1)
        assert await b.recv() == news(ch, f"after {req_id}", position["epoch"],
                                      position["offset"] + 1)
        await b.silence(0.1)


async def test_not_recovered_from_another_epoch(srv, enc):
    ch = f"news/other-epoch-{enc}"
    c, epoch = await new_channel(srv, enc, ch, 3)
    async with c:
        for n, since in enumerate([{"epoch": epoch + "0", "offset": 1},
                                   {"epoch": "0" + epoch, "offset": 0},
                                   {"epoch": "", "offset": 3}]):
            await not_recovered(srv, enc, c, ch, since, {"epoch": epoch, "offset": 3 + n}, 10 + n)


async def test_not_recovered_from_an_offset_not_reached(srv, enc):
    ch = f"news/future-{enc}"
    c, epoch = await new_channel(srv, enc, ch, 3)
    async with c:
        # the next publication is offset 4 (first round): the `since` it was sent did
        # not stand for it
        for n, offset in enumerate([4, 2**64 - 1]):
            await not_recovered(srv, enc, c, ch, {"epoch": epoch, "offset": offset},
                                {"epoch": epoch, "offset": 3 + n}, 10 + n)


async def test_not_recovered_past_the_history(srv, enc):
    ch = f"news/trimmed-{enc}"
    last = HISTORY + 1
    c, epoch = await new_channel(srv, enc, ch, last)
    async with c:
        # the history holds offsets 2 ..= 101: offset 1 is gone
        await not_recovered(srv, enc, c, ch, {"epoch": epoch, "offset": 0},
                            {"epoch": epoch, "offset": last}, 1000)
        last += 1
        async with await Peer.open(srv, enc) as b:
            before, reply = await resume(b, 1, ch, {"epoch": epoch, "offset": 2})
            assert before == [news(ch, f"m{i}", epoch, i) for i in range(3, last)] + \
                [news(ch, "after 1000", epoch, last)], \
                [f[4]["offset"] for f in before if f[0] == "sl/pub"]
            check_recovered(reply, epoch, 2, last)
            await publish_from(c, 0, ch, "next", 1)
            assert await b.recv() == news(ch, "next", epoch, last + 1)


async def test_publications_racing_the_subscribe(srv, enc):
    """Publications published while the subscribe is handled: whether they come
    before or after the reply, the subscriber sees consecutive offsets, each once,
    from `since` (recovered) or from the reply's position (not recovered)."""
    ch = f"news/race-{enc}"
    burst = 40
    c, epoch = await new_channel(srv, enc, ch, 5)
    async with c:
        b = await Peer.open(srv, enc)
        d = await Peer.open(srv, enc)
        async with b, d:
            for i in range(burst):
                await c.send(["test/publish", {"channel": ch, "text": f"r{i}"}, 100 + i])
            await b.send(["sl/sub", 1, ch, {"epoch": epoch, "offset": 5}])
            await d.send(["sl/sub", 1, ch, {"epoch": "0" + epoch, "offset": 5}])
            replies = sorted([(await c.recv())[:2] for _ in range(burst)])
            assert replies == [["sl/ok", 100 + i] for i in range(burst)], replies
            last = 5 + burst
            for p, recovered in ((b, True), (d, False)):
                frames, reply, start = [], None, None
                # until the reply and the last publication (or a reply at the last one)
                while start is None or (frames[-1][4]["offset"] if frames else start) < last:
                    f = await p.recv()
                    if f[0] == "sl/ok":
                        assert reply is None and f[1] == 1, f
                        reply = f[2]
                        start = 5 if recovered else reply["position"]["offset"]
                    else:
                        assert f[:3] == ["sl/pub", ch, "test/news"] and len(f) == 5, f
                        frames.append(f)
                assert reply["recovered"] is recovered, reply
                assert reply["position"]["epoch"] == epoch and \
                    5 <= reply["position"]["offset"] <= last, reply
                offsets = [f[4]["offset"] for f in frames]
                assert offsets == list(range(start + 1, last + 1)), (reply, offsets)
                assert all(f[4]["epoch"] == epoch for f in frames), frames
                texts = sorted(f[3]["text"] for f in frames)
                if recovered:
                    assert texts == sorted(f"r{i}" for i in range(burst)), texts
                else:
                    assert len(set(texts)) == len(texts), texts
                await p.silence(0.1)


async def test_since_on_a_connection_already_subscribed(srv, enc):
    """Section 8: a `sl/sub` for a channel the connection is already subscribed
    to changes nothing: nothing is replayed, the position is the current one,
    and `recovered` is true only when `since` equals it."""
    ch = f"news/again-{enc}"
    c, epoch = await new_channel(srv, enc, ch, 3)
    async with c:
        async with await Peer.open(srv, enc) as b:
            f = await b.request(["sl/sub", 1, ch])
            current = {"epoch": epoch, "offset": 3}
            assert f == ["sl/ok", 1, {"position": current, "recovered": False}], f
            f = await b.request(["sl/sub", 2, ch, {"epoch": epoch, "offset": 1}])
            assert f == ["sl/ok", 2, {"position": current, "recovered": False}], f
            f = await b.request(["sl/sub", 3, ch, current])
            assert f == ["sl/ok", 3, {"position": current, "recovered": True}], f
            await publish_from(c, 4, ch, "m4", 1)
            assert await b.recv() == news(ch, "m4", epoch, 4)
            await b.silence(0.1)
