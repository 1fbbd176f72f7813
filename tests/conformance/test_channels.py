"""Section 8: subscribing, publications and their positions, the epoch, refusals."""

from harness import Peer, Server, assert_err, publish

SERVER_ARGS = ()


async def test_positions_increase(srv, enc):
    ch = f"news/positions-{enc}"
    async with await Peer.open(srv, enc) as a, await Peer.open(srv, enc) as b:
        f = await a.request(["sl/sub", 1, ch])
        assert f[:2] == ["sl/ok", 1] and list(f[2]) == ["position", "recovered"], f
        pos = f[2]["position"]
        assert list(pos) == ["epoch", "offset"] and isinstance(pos["epoch"], str) and pos["epoch"]
        assert pos["offset"] == 0, "a new channel: no publication before"
        assert f[2]["recovered"] is False, f"no `since` sent: {f}"
        epoch = pos["epoch"]
        p1 = await publish(a, 2, ch, "one", 1)
        assert p1[4] == {"epoch": epoch, "offset": 1}
        p2 = await publish(a, 3, ch, "two", 1)
        assert p2[4] == {"epoch": epoch, "offset": 2}
        # a second subscriber starts at the position of the last publication
        f = await b.request(["sl/sub", 1, ch])
        assert f == ["sl/ok", 1, {"position": {"epoch": epoch, "offset": 2}, "recovered": False}], f
        p3 = await publish(a, 4, ch, "three", 2)
        assert p3[4] == {"epoch": epoch, "offset": 3}
        assert await b.recv() == p3
        # from a connection that is not subscribed
        async with await Peer.open(srv, enc) as c:
            assert await c.request(["test/publish", {"channel": ch, "text": "four"}, 1]) == \
                ["sl/ok", 1, 2]
            await c.silence(0.2)
        want = ["sl/pub", ch, "test/news", {"text": "four"}, {"epoch": epoch, "offset": 4}]
        assert await a.recv() == want
        assert await b.recv() == want


async def test_a_publication_leaving_out_its_sender(srv, enc):
    # Section 8: the connection left out does not receive it; its offsets skip
    # it; a resume from before it replays it.
    ch = f"news/others-{enc}"
    async with await Peer.open(srv, enc) as a, await Peer.open(srv, enc) as b:
        f = await a.request(["sl/sub", 1, ch])
        epoch = f[2]["position"]["epoch"]
        assert (await b.request(["sl/sub", 1, ch]))[0] == "sl/ok"
        # The reply is the next frame `a` gets: nothing published to it.
        f = await a.request(["test/publish-others", {"channel": ch, "text": "o1"}, 2])
        assert f == ["sl/ok", 2, 1], f
        want = ["sl/pub", ch, "test/news", {"text": "o1"}, {"epoch": epoch, "offset": 1}]
        assert await b.recv() == want
        p2 = await publish(a, 3, ch, "o2", 2)
        assert p2[4] == {"epoch": epoch, "offset": 2}, "a's offsets skip the one it was left out of"
        assert await b.recv() == p2
        await a.silence(0.2)
        # Resuming from before it, on another connection, replays it like any other.
        async with await Peer.open(srv, enc) as c:
            since = {"epoch": epoch, "offset": 0}
            await c.send(["sl/sub", 1, ch, since])
            frames = await c.recv_n(3)
            assert frames[0] == want and frames[1] == p2, frames
            assert frames[2] == ["sl/ok", 1, {"position": {"epoch": epoch, "offset": 2},
                                             "recovered": True}], frames


async def test_unsubscribe(srv, enc):
    ch = f"news/unsub-{enc}"
    async with await Peer.open(srv, enc) as a, await Peer.open(srv, enc) as b:
        await a.request(["sl/sub", 1, ch])
        await b.request(["sl/sub", 1, ch])
        assert await b.request(["sl/unsub", 2, ch]) == ["sl/ok", 2, None]
        await publish(a, 3, ch, "only a", 1)
        await b.silence(0.2)
        # not subscribed: still answered
        assert await b.request(["sl/unsub", 3, ch]) == ["sl/ok", 3, None]
        assert await b.request(["sl/unsub", 4, "news/never"]) == ["sl/ok", 4, None]


async def test_subscribing_twice(srv, enc):
    ch = f"news/twice-{enc}"
    async with await Peer.open(srv, enc) as a:
        f1 = await a.request(["sl/sub", 1, ch])
        f2 = await a.request(["sl/sub", 2, ch])
        assert f2 == ["sl/ok", 2, f1[2]], (f1, f2)
        await publish(a, 3, ch, "once", 1)
        await a.silence(0.2)


async def test_epoch_survives_the_channel_emptying(srv, enc):
    ch = f"news/epoch-{enc}"
    async with await Peer.open(srv, enc) as a:
        epoch = (await a.request(["sl/sub", 1, ch]))[2]["position"]["epoch"]
        await publish(a, 2, ch, "x", 1)
        await a.request(["sl/unsub", 3, ch])  # the last subscriber leaves
        f = await a.request(["sl/sub", 4, ch])
        assert f == ["sl/ok", 4, {"position": {"epoch": epoch, "offset": 1}, "recovered": False}], f
    # the last subscriber closes; the channel, empty, still numbers its publications
    async with await Peer.open(srv, enc) as c:
        assert await c.request(["test/publish", {"channel": ch, "text": "y"}, 1]) == ["sl/ok", 1, 0]
        f = await c.request(["sl/sub", 2, ch])
        assert f == ["sl/ok", 2, {"position": {"epoch": epoch, "offset": 2}, "recovered": False}], f


async def test_forbidden_channels(srv, enc):
    async with await Peer.open(srv, enc) as a:
        assert_err(await a.request(["sl/sub", 1, "secret/plans"]), 1, "forbidden",
                   "secret channels are closed")
        assert_err(await a.request(["sl/sub", 2, "other/x"]), 2, "forbidden")
        assert_err(await a.request(["sl/sub", 3, "news"]), 3, "forbidden")
        assert_err(await a.request(["sl/sub", 4, ""]), 4, "forbidden")
        name = "news/" + "é" * 125 + "a"  # 256 bytes, 131 characters
        assert len(name.encode()) == 256
        assert (await a.request(["sl/sub", 5, name]))[0] == "sl/ok"
        assert_err(await a.request(["sl/sub", 6, name + "b"]), 6, "forbidden")
        assert_err(await a.request(["sl/sub", 7, "news/" + "a" * 1000]), 7, "forbidden")
        # refused subscriptions take nothing: publications are not received
        assert await a.request(["test/publish", {"channel": "secret/plans", "text": "s"}, 8]) \
            == ["sl/ok", 8, 0]


async def test_max_subscriptions_and_channel_name(enc):
    async with Server("--max-subscriptions", 2, "--max-channel-name", 10) as srv:
        async with await Peer.open(srv, enc) as a:
            assert a.handshake["limits"]["max_subscriptions"] == 2
            assert a.handshake["limits"]["max_channel_name"] == 10
            assert_err(await a.request(["sl/sub", 1, "news/67890a"]), 1, "forbidden")
            assert (await a.request(["sl/sub", 2, "news/67890"]))[0] == "sl/ok"
            assert (await a.request(["sl/sub", 3, "news/b"]))[0] == "sl/ok"
            assert_err(await a.request(["sl/sub", 4, "news/c"]), 4, "forbidden")
            # already there: subscribing twice is not an error, even at the bound
            assert (await a.request(["sl/sub", 5, "news/b"]))[0] == "sl/ok"
            await a.request(["sl/unsub", 6, "news/b"])
            assert (await a.request(["sl/sub", 7, "news/c"]))[0] == "sl/ok"
