"""Section 8, Presence: `sl/presence` snapshots, watches and `sl/presence-diff`,
the grace before a user leaves, refusals and malformed frames (sections 3, 4, 9).

Channels `news/*` keep presence; a user's info there is `{"name": USER}`, the user
coming from `?name=`. The tests that wait for the presence grace run in the
background, on their own server."""

import asyncio
import contextlib

import codec
from codec import PRESENCE_SNAPSHOT, STR
from harness import Peer, Server, assert_err, assert_error, background

SERVER_ARGS = ()
GRACE = 1.0
WINDOW = 0.1  # changes are gathered for 100 ms


def grace_server():
    return Server("--presence-grace-ms", int(GRACE * 1000))


def member(user):
    return {"user_id": user, "info": {"name": user}}


def snapshot(req_id, *users):
    return ["sl/ok", req_id, {"members": [member(u) for u in users]}]


def diff(ch, joined=(), left=()):
    return ["sl/presence-diff", ch, {"joined": [member(u) for u in joined], "left": list(left)}]


async def subscribed(stack, srv, enc, ch, name=None):
    """A connection (of user `name`, anonymous without) subscribed to `ch`."""
    p = await stack.enter_async_context(await Peer.open(srv, enc, name=name))
    f = await p.request(["sl/sub", 1, ch])
    assert f[0] == "sl/ok", f
    return p


async def watching(stack, srv, enc, ch, *members):
    """An anonymous connection subscribed to `ch` and watching it; `members` are
    the users its snapshot must list."""
    w = await subscribed(stack, srv, enc, ch)
    assert await w.request(["sl/presence", 2, ch, True]) == snapshot(2, *members)
    return w


async def test_snapshot_sorted_by_user_without_anonymous(srv, enc):
    ch = f"news/snapshot-{enc}"
    async with contextlib.AsyncExitStack() as stack:
        w = await subscribed(stack, srv, enc, ch)
        assert await w.request(["sl/presence", 2, ch, False]) == snapshot(2)
        for name in ("carol", "ada", "bob", "bob", None):
            await subscribed(stack, srv, enc, ch, name)
        # connected but not subscribed, or subscribed elsewhere: not members
        await stack.enter_async_context(await Peer.open(srv, enc, name="dave"))
        await subscribed(stack, srv, enc, f"news/elsewhere-{enc}", "eve")
        want = ("ada", "bob", "carol")
        assert await w.request(["sl/presence", 3, ch, False]) == snapshot(3, *want)
        ada = await subscribed(stack, srv, enc, ch, "ada")  # a second connection of ada's
        assert await ada.request(["sl/presence", 2, ch, False]) == snapshot(2, *want)
        await w.silence(2 * WINDOW)  # nothing was watched


@background
async def test_watch_sends_diffs_on_join_and_leave(enc):
    ch = "news/diffs"
    loop = asyncio.get_running_loop()
    async with grace_server() as srv, contextlib.AsyncExitStack() as stack:
        w = await watching(stack, srv, enc, ch)
        d1 = await subscribed(stack, srv, enc, ch, "dan")
        assert await w.recv() == diff(ch, joined=["dan"])
        # a second connection of the same user, an anonymous one, and another
        # channel: no change
        d2 = await subscribed(stack, srv, enc, ch, "dan")
        await subscribed(stack, srv, enc, ch)
        await subscribed(stack, srv, enc, "news/diffs-other", "fred")
        # dan still has a connection subscribed
        await d1.close()
        await w.silence(GRACE + 2 * WINDOW)
        assert await d2.request(["sl/unsub", 2, ch]) == ["sl/ok", 2, None]
        left_at = loop.time()
        assert await w.recv(GRACE + 2) == diff(ch, left=["dan"])
        waited = loop.time() - left_at
        assert waited >= GRACE - 0.05, f"dan left {waited:.3f} s after unsubscribing"
        # leaving by closing the connection
        g = await subscribed(stack, srv, enc, ch, "gil")
        assert await w.recv() == diff(ch, joined=["gil"])
        await g.close()
        closed_at = loop.time()
        assert await w.recv(GRACE + 2) == diff(ch, left=["gil"])
        assert loop.time() - closed_at >= GRACE - 0.05
        await w.silence(2 * WINDOW)


@background
async def test_grace_hides_a_reconnect(enc):
    ch = "news/grace"
    async with grace_server() as srv, contextlib.AsyncExitStack() as stack:
        e1 = await subscribed(stack, srv, enc, ch, "eve")
        w = await watching(stack, srv, enc, ch, "eve")
        # a page reload: the connection closes, another subscribes within the grace
        await e1.close()
        e2 = await subscribed(stack, srv, enc, ch, "eve")
        await w.silence(GRACE + 2 * WINDOW)
        assert await w.request(["sl/presence", 3, ch, True]) == snapshot(3, "eve")
        # within the grace a user that left is still a member
        await e2.request(["sl/unsub", 2, ch])
        assert await w.request(["sl/presence", 4, ch, True]) == snapshot(4, "eve")
        assert await w.recv(GRACE + 2) == diff(ch, left=["eve"])
        assert await w.request(["sl/presence", 5, ch, True]) == snapshot(5)


async def test_watch_false_stops_the_diffs(srv, enc):
    ch = f"news/unwatch-{enc}"
    async with contextlib.AsyncExitStack() as stack:
        w = await watching(stack, srv, enc, ch)
        assert await w.request(["sl/presence", 3, ch, False]) == snapshot(3)
        await subscribed(stack, srv, enc, ch, "fay")
        await w.silence(2 * WINDOW)
        # watching again: a snapshot, then diffs again
        assert await w.request(["sl/presence", 4, ch, True]) == snapshot(4, "fay")
        await subscribed(stack, srv, enc, ch, "gus")
        assert await w.recv() == diff(ch, joined=["gus"])


async def test_unsubscribing_ends_the_watch(srv, enc):
    ch = f"news/unsub-watch-{enc}"
    async with contextlib.AsyncExitStack() as stack:
        w = await watching(stack, srv, enc, ch)
        assert await w.request(["sl/unsub", 3, ch]) == ["sl/ok", 3, None]
        assert (await w.request(["sl/sub", 4, ch]))[0] == "sl/ok"
        # subscribed again, but the watch is not restored
        await subscribed(stack, srv, enc, ch, "hal")
        await w.silence(2 * WINDOW)
        assert await w.request(["sl/presence", 5, ch, True]) == snapshot(5, "hal")


async def test_snapshot_and_diffs_add_up(srv, enc):
    """Users join while the watch starts: a diff may come before the snapshot's
    reply (it applies after the snapshot); snapshot and diffs end at the truth."""
    ch = f"news/race-{enc}"
    users = [f"u{i}" for i in range(8)]
    async with contextlib.AsyncExitStack() as stack:
        w = await subscribed(stack, srv, enc, ch)
        peers = [await stack.enter_async_context(await Peer.open(srv, enc, name=u))
                 for u in users]
        for p in peers[:4]:
            await p.send(["sl/sub", 1, ch])
        await w.send(["sl/presence", 2, ch, True])
        for p in peers[4:]:
            await p.send(["sl/sub", 1, ch])
        for p in peers:
            assert (await p.recv())[:2] == ["sl/ok", 1]
        snap, diffs = None, []
        loop = asyncio.get_running_loop()
        end = loop.time() + 3
        state = None
        while state != set(users):
            f = await w.recv(max(0.01, end - loop.time()))
            if f[0] == "sl/ok":
                assert snap is None and f[1] == 2 and list(f[2]) == ["members"], f
                snap = f[2]["members"]
                ids = [m["user_id"] for m in snap]
                assert ids == sorted(ids) and len(set(ids)) == len(ids), snap
            else:
                assert f[:2] == ["sl/presence-diff", ch] and list(f[2]) == ["joined", "left"], f
                diffs.append(f[2])
            if snap is not None:
                state = {m["user_id"]: m for m in snap}
                for d in diffs:
                    for u in d["left"]:
                        state.pop(u, None)
                    for m in d["joined"]:
                        state[m["user_id"]] = m
                assert all(m == member(u) for u, m in state.items()), state
                state = set(state)
        # A join made between the start of the watch and its snapshot is in the
        # snapshot and may be told again by a diff (section 8: a `joined` member
        # already known replaces its entry); nothing may change the members now.
        end = loop.time() + 2 * WINDOW
        while (wait := end - loop.time()) > 0:
            try:
                f = await asyncio.wait_for(w.ws.recv(), wait)
            except asyncio.TimeoutError:
                break
            f = w.decode(f)
            assert f[:2] == ["sl/presence-diff", ch] and f[2]["left"] == [], f
            assert all(m == member(m["user_id"]) and m["user_id"] in state
                       for m in f[2]["joined"]), (f, state)


async def test_a_visit_within_one_window_appears_once(enc):
    """Without a grace, a user that joins and leaves within 100 ms ends the window
    not a member: a `left` for a user the watcher never saw join. (If the window
    happens to end between the two, a join then a leave.)"""
    async with Server("--presence-grace-ms", 0) as srv, contextlib.AsyncExitStack() as stack:
        ch = "news/visit"
        w = await watching(stack, srv, enc, ch)
        async with await Peer.open(srv, enc, name="val") as v:
            await v.send(["sl/sub", 1, ch])
            await v.send(["sl/unsub", 2, ch])
            assert (await v.recv())[:2] == ["sl/ok", 1] and await v.recv() == ["sl/ok", 2, None]
        f = await w.recv()
        if f != diff(ch, left=["val"]):
            assert f == diff(ch, joined=["val"]), f
            assert await w.recv() == diff(ch, left=["val"])
        await w.silence(2 * WINDOW)
        assert await w.request(["sl/presence", 3, ch, False]) == snapshot(3)


async def test_presence_forbidden(srv, enc):
    # `news/*` keeps presence, `plain/*` does not (section 8: `forbidden` either way
    # when not subscribed; subscribed, only where the channel keeps presence).
    ch = f"news/forbidden-{enc}"
    async with await Peer.open(srv, enc, name="ivy") as p:
        for i, (name, watch) in enumerate([(ch, True), (ch, False), ("secret/x", True),
                                           ("other/x", True), ("", False)], 1):
            assert_err(await p.request(["sl/presence", i, name, watch]), i, "forbidden")
        await p.request(["sl/sub", 10, ch])
        assert await p.request(["sl/presence", 11, ch, False]) == snapshot(11, "ivy")
        await p.request(["sl/unsub", 12, ch])
        assert_err(await p.request(["sl/presence", 13, ch, True]), 13, "forbidden")
        plain = f"plain/forbidden-{enc}"
        await p.request(["sl/sub", 14, plain])
        assert_err(await p.request(["sl/presence", 15, plain, True]), 15, "forbidden")
        await p.silence(2 * WINDOW)


async def refused_to_the_id_or_not(srv, enc, ch, to_the_id, no_id, user):
    """Malformed `sl/presence` frames: those of `to_the_id` answered `sl/err` bad-frame
    to the ids 1, 2, ...; those of `no_id` with `sl/error`; none starts a watch."""
    async with contextlib.AsyncExitStack() as stack:
        w = await subscribed(stack, srv, enc, ch)
        for i, raw in enumerate(to_the_id, 1):
            await w.send_raw(raw)
            w.expect_reply(i, PRESENCE_SNAPSHOT)
            assert_err(await w.recv(), i, "bad-frame")
        for raw in no_id:
            await w.send_raw(raw)
            assert_error(await w.recv(), "bad-frame")
        await subscribed(stack, srv, enc, ch, user)
        await w.silence(2 * WINDOW)
        assert await w.request(["sl/presence", 20, ch, False]) == snapshot(20, user)


async def test_json_malformed_presence_bad_frame(srv):
    ch = "news/malformed-json"
    to_the_id = ['["sl/presence",1,"news/malformed-json","true"]',
                 '["sl/presence",2,"news/malformed-json",1]',
                 '["sl/presence",3,"news/malformed-json",null]',
                 '["sl/presence",4,"news/malformed-json"]',
                 '["sl/presence",5,7,true]',
                 '["sl/presence",6,null,false]',
                 '["sl/presence",7,"news/malformed-json",true,0]',
                 '["sl/presence",8,"news/malformed-json",false,{}]']
    no_id = ['["sl/presence"]', '["sl/presence","news/malformed-json",true]',
             '["sl/presence",-1,"news/malformed-json",true]',
             f'["sl/presence",{2**53},"news/malformed-json",true]']
    await refused_to_the_id_or_not(srv, "json", ch, to_the_id, no_id, "jo")


async def test_postcard_malformed_presence_bad_frame(srv):
    ch = "news/malformed-pc"
    name = STR.enc(ch)
    assert b"\x0c\x14" + name + b"\x00" == codec.pc_encode(["sl/presence", 20, ch, False])
    to_the_id = [
        b"\x0c\x01" + name + b"\x02",  # watch neither 00 nor 01
        b"\x0c\x02" + name + b"\xff",
        b"\x0c\x03" + name + b"\x01\x00",  # a trailing byte
        b"\x0c\x04" + name,  # watch missing
        b"\x0c\x05\x02\xff\xfe\x01",  # the channel not UTF-8
        b"\x0c\x06\x40" + ch.encode() + b"\x01",  # the channel runs past the end
        b"\x0c\x07\x02",  # cut after the id
        b"\x0c\x88\x00" + name + b"\x01",  # req_id 8 written overlong
    ]
    no_id = [
        b"\x0c",
        b"\x0c\xff",  # the req_id runs past the end
        b"\x8c\x00\x09" + name + b"\x01",  # the kind written overlong
    ]
    await refused_to_the_id_or_not(srv, "postcard", ch, to_the_id, no_id, "kai")
