"""Sections 2, 3, 4, 7 and 9: events, requests and replies, deadlines, ids, and
the frames a receiver refuses (and how it answers them)."""


import codec
from codec import ECHOED, SUB_REPLY, U64, UNIT, enc_varint, key_of
from harness import MAX_SAFE, Peer, RawWS, assert_err, assert_error, json_frames

SERVER_ARGS = ()


def echoed(p, text):
    return {"text": text, "conn_id": p.handshake["conn_id"], "user_id": None}


# ---------------------------------------------------------------- the ordinary exchange


async def test_echo_request(srv, enc):
    async with await Peer.open(srv, enc, name="ada") as p:
        f = await p.request(["test/echo", {"text": "héllo ✓"}, 0])
        assert f == ["sl/ok", 0, {"text": "héllo ✓", "conn_id": p.handshake["conn_id"],
                                  "user_id": "ada"}]
        f = await p.request(["test/echo", {"text": ""}, 7, 5000])
        assert f == ["sl/ok", 7, {"text": "", "conn_id": p.handshake["conn_id"], "user_id": "ada"}]


async def test_application_error(srv, enc):
    async with await Peer.open(srv, enc) as p:
        f = await p.request(["test/fail", {"reason": "no way"}, 3])
        assert f == ["sl/err", 3, {"code": "test/refused", "message": "refused: no way",
                                   "data": {"reason": "no way"}}], f


async def test_replies_of_every_type(srv, enc):
    async with await Peer.open(srv, enc) as p:
        assert await p.request(["test/slow", {"ms": 5}, 1, 4000]) == ["sl/ok", 1, 5]
        assert await p.request(["test/notes", {"client": f"nobody-{enc}"}, 2]) == ["sl/ok", 2, []]
        assert await p.request(["test/publish", {"channel": "news/none", "text": "x"}, 3]) \
            == ["sl/ok", 3, 0]


async def test_one_way_events_in_order(srv, enc):
    client = f"order-{enc}"
    async with await Peer.open(srv, enc) as p:
        for seq in range(1, 41):
            await p.send(["test/note", {"client": client, "seq": seq}])
        await p.silence(0.2)  # one-way: nothing answers
        f = await p.request(["test/notes", {"client": client}, 1])
        assert f == ["sl/ok", 1, list(range(1, 41))], f


async def test_server_sends_events(srv, enc):
    async with await Peer.open(srv, enc) as p:
        await p.send(["test/push", {"text": "to you"}])
        assert await p.recv() == ["test/news", {"text": "to you"}]


async def test_client_ping_answered(srv, enc):
    async with await Peer.open(srv, enc) as p:
        for n in (0, 1, 3, 2**53, 2**64 - 1):
            await p.send(["sl/ping", n])
            assert await p.recv() == ["sl/pong", n]


async def test_replies_and_frames_ignored(srv, enc):
    # Replies nobody waits for, pongs, errors and a client's close reason are taken
    # silently (section 7, 9): no answer, no violation (more than the allowance of 20).
    async with await Peer.open(srv, enc) as p:
        for i in range(25):
            await p.send(["sl/err", 1000 + i, {"code": "x/y", "message": "late"}])
            await p.send(["sl/pong", i])
            await p.send(["sl/error", {"code": "bad-event", "message": "m", "data": [1]}])
        if enc == "json":
            for i in range(25):
                await p.send(["sl/ok", 2000 + i, {"any": "thing"}])
        else:
            for i in range(25):
                await p.send_raw(b"\x02" + enc_varint(2000 + i) + b"\x05hello")
        await p.silence(0.3)
        assert (await p.request(["test/echo", {"text": "on"}, 1]))[0] == "sl/ok"


# ---------------------------------------------------------------- unknown and wrong events


async def test_unknown_event_bad_event(srv, enc):
    async with await Peer.open(srv, enc) as p:
        if enc == "json":
            await p.send_raw('["test/nope",{"a":1}]')
            assert_error(await p.recv(), "bad-event")
            await p.send_raw('["test/nope",{"a":1},4]')
            assert_err(await p.recv(), 4, "bad-event")
            await p.send_raw('["other.v2/thing",null,5,100]')
            assert_err(await p.recv(), 5, "bad-event")
        else:
            key = enc_varint(key_of("test/nope"))
            await p.send_raw(b"\x00" + key + b"\x01\x02")
            assert_error(await p.recv(), "bad-event")
            await p.send_raw(b"\x01" + key + b"\x04\x00\x01\x02")
            assert_err(await p.recv(), 4, "bad-event")
            await p.send_raw(b"\x01" + enc_varint(0) + b"\x05\x01\x64")
            assert_err(await p.recv(), 5, "bad-event")
        assert (await p.request(["test/echo", {"text": "on"}, 6]))[0] == "sl/ok"


async def test_ids_not_of_the_id_form_are_unknown_events(srv):
    # Section 2 gives the form of an id; one that is not of that form is no routed id.
    async with await Peer.open(srv, "json") as p:
        for i, ident in enumerate(["Test/Echo", "test/echo/x", "sl", "a/" + "b" * 200, "test/ echo"]):
            await p.send_raw(codec.json_encode([ident, {"text": "x"}, i]))
            assert_err(await p.recv(), i, "bad-event")
            await p.send_raw(codec.json_encode([ident, {"text": "x"}]))
            assert_error(await p.recv(), "bad-event")


async def test_event_of_the_wrong_kind_bad_event(srv, enc):
    async with await Peer.open(srv, enc) as p:
        # a one-way event sent as a request, a request sent as a one-way event
        if enc == "json":
            await p.send_raw('["test/note",{"client":"wrong-kind","seq":1},8]')
            assert_err(await p.recv(), 8, "bad-event")
            await p.send_raw('["test/echo",{"text":"x"}]')
            assert_error(await p.recv(), "bad-event")
        else:
            note = codec.EVENTS["test/note"][1].enc({"client": "wrong-kind", "seq": 1})
            await p.send_raw(b"\x01" + enc_varint(key_of("test/note")) + b"\x08\x00" + note)
            assert_err(await p.recv(), 8, "bad-event")
            await p.send_raw(b"\x00" + enc_varint(key_of("test/echo")) + b"\x01x")
            assert_error(await p.recv(), "bad-event")
        f = await p.request(["test/notes", {"client": "wrong-kind"}, 9])
        assert f == ["sl/ok", 9, []], "the note sent as a request was handled"


async def test_bad_payload(srv, enc):
    async with await Peer.open(srv, enc) as p:
        if enc == "json":
            await p.send_raw('["test/echo",{"text":5},1]')
            assert_err(await p.recv(), 1, "bad-payload")
            await p.send_raw('["test/echo",{},2]')
            assert_err(await p.recv(), 2, "bad-payload")
            await p.send_raw('["test/slow",{"ms":-1},3]')
            assert_err(await p.recv(), 3, "bad-payload")
            await p.send_raw('["test/note",{"client":"bp","seq":"one"}]')
            assert_error(await p.recv(), "bad-payload")
        else:
            echo = b"\x01" + enc_varint(key_of("test/echo"))
            await p.send_raw(echo + b"\x01\x00" + b"\x02hi" + b"\x00")  # trailing byte
            assert_err(await p.recv(), 1, "bad-payload")
            await p.send_raw(echo + b"\x02\x00" + b"\x05hi")  # string runs past the end
            assert_err(await p.recv(), 2, "bad-payload")
            await p.send_raw(echo + b"\x03\x00" + b"\x02\xff\xfe")  # not UTF-8
            assert_err(await p.recv(), 3, "bad-payload")
            note = b"\x00" + enc_varint(key_of("test/note"))
            await p.send_raw(note + b"\x02bp")  # seq missing
            assert_error(await p.recv(), "bad-payload")
        f = await p.request(["test/notes", {"client": "bp"}, 9])
        assert f == ["sl/ok", 9, []], f


# ---------------------------------------------------------------- deadlines


async def test_deadline_zero(srv, enc):
    async with await Peer.open(srv, enc) as p:
        await p.send(["test/slow", {"ms": 0}, 1, 0])
        assert_err(await p.recv(), 1, "deadline-exceeded")
        await p.send(["test/ask", {"text": "never asked"}, 2, 0])
        assert_err(await p.recv(), 2, "deadline-exceeded")
        await p.silence(0.3)  # the handler never ran: no question came


async def test_deadline_passed_while_running(srv, enc):
    async with await Peer.open(srv, enc) as p:
        await p.send(["test/slow", {"ms": 900}, 1, 150])
        assert_err(await p.recv(2.0), 1, "deadline-exceeded")
        await p.silence(1.2)  # exactly one reply: the handler was stopped


async def test_deadline_stops_the_handler(srv, enc):
    # test/ask's handler waits for this client's answer; past the deadline it is stopped.
    async with await Peer.open(srv, enc) as p:
        await p.send(["test/ask", {"text": "q"}, 1, 300])
        q = await p.recv()
        assert q[:2] == ["test/question", {"text": "q"}] and len(q) in (3, 4), q
        assert_err(await p.recv(2.0), 1, "deadline-exceeded")
        await p.send(["sl/ok", q[2], "too late"])  # a late reply: ignored
        await p.silence(0.3)
        assert (await p.request(["test/echo", {"text": "on"}, 2]))[0] == "sl/ok"


async def test_duplicate_request(srv, enc):
    async with await Peer.open(srv, enc) as p:
        await p.send(["test/slow", {"ms": 400}, 5])
        await p.send(["test/slow", {"ms": 0}, 5])
        assert_err(await p.recv(), 5, "duplicate-request")
        assert await p.recv() == ["sl/ok", 5, 400], "the first request did not go on"
        # the id is free again once answered
        assert await p.request(["test/slow", {"ms": 1}, 5]) == ["sl/ok", 5, 1]


# ---------------------------------------------------------------- server to client requests


async def test_server_requests_the_client(srv, enc):
    async with await Peer.open(srv, enc) as p:
        await p.send(["test/ask", {"text": "what?"}, 11])
        q = await p.recv()
        assert q[0] == "test/question" and q[1] == {"text": "what?"} and len(q) in (3, 4), q
        assert isinstance(q[2], int)
        if len(q) == 4:
            assert 0 <= q[3] < 2**32
        await p.send(["sl/ok", q[2], "this"])
        assert await p.recv() == ["sl/ok", 11, "this"]
        # two at once, answered in the other order
        await p.send(["test/ask", {"text": "a"}, 12])
        await p.send(["test/ask", {"text": "b"}, 13])
        q1, q2 = await p.recv(), await p.recv()
        assert sorted([q1[1]["text"], q2[1]["text"]]) == ["a", "b"] and q1[2] != q2[2], (q1, q2)
        await p.send(["sl/ok", q2[2], q2[1]["text"].upper()])
        await p.send(["sl/ok", q1[2], q1[1]["text"].upper()])
        replies = sorted([await p.recv(), await p.recv()])
        assert replies == [["sl/ok", 12, "A"], ["sl/ok", 13, "B"]], replies


# ---------------------------------------------------------------- JSON: ids, deadlines, shapes


async def test_json_request_ids_up_to_2_53_minus_1(srv):
    async with await Peer.open(srv, "json") as p:
        f = await p.request(["test/echo", {"text": "max"}, MAX_SAFE])
        assert f == ["sl/ok", MAX_SAFE, echoed(p, "max")]
        f = await p.request(["sl/sub", MAX_SAFE, "news/ids"])
        assert f[:2] == ["sl/ok", MAX_SAFE]
        assert await p.request(["sl/unsub", MAX_SAFE, "news/ids"]) == ["sl/ok", MAX_SAFE, None]


async def test_json_request_ids_over_2_53_minus_1_bad_frame(srv):
    big = 2**53
    async with await Peer.open(srv, "json") as p:
        for text in [f'["test/echo",{{"text":"x"}},{big}]',
                     f'["test/echo",{{"text":"x"}},{2**64 - 1},100]',
                     f'["test/echo",{{"text":"x"}},{2**64}]',
                     f'["sl/sub",{big},"news/ids"]',
                     f'["sl/unsub",{big},"news/ids"]',
                     f'["sl/ok",{big},"x"]',
                     f'["sl/err",{big},{{"code":"a/b","message":"m"}}]']:
            await p.send_raw(text)
            f = await p.recv()
            assert_error(f, "bad-frame")
        assert (await p.request(["test/echo", {"text": "on"}, 1]))[0] == "sl/ok"


async def test_json_bad_deadline_answered_to_the_id(srv):
    async with await Peer.open(srv, "json") as p:
        bad = ["-1", str(2**32), "1.5", '"100"', "null", "true", "1e3"]
        for i, d in enumerate(bad, start=1):
            await p.send_raw(f'["test/echo",{{"text":"x"}},{i},{d}]')
            f = await p.recv()
            assert f[0] == "sl/err" and f[1] == i, f"deadline {d}: {f}"
            assert_err(f, i, "bad-frame")
        # extra elements after the deadline
        await p.send_raw('["test/echo",{"text":"x"},20,100,1]')
        assert_err(await p.recv(), 20, "bad-frame")
        # the largest deadline is valid
        f = await p.request(["test/echo", {"text": "y"}, 21, 2**32 - 1])
        assert f == ["sl/ok", 21, echoed(p, "y")]


async def test_json_malformed_frames_bad_frame(srv):
    texts = ["[", "{}", "[]", "null", "[1,2]", '"sl/ping"', '["sl/ping"]', '["sl/ping",1,2]',
             '["sl/ping",-1]', '["sl/ping",1.5]', f'["sl/ping",{2**64}]', '["test/echo"]',
             '["test/echo",{"text":"x"},-1]', '["test/echo",{"text":"x"},1.5]',
             '["test/echo",{"text":"x"},"7"]', '["test/note",{"client":"c","seq":1},"x"]',
             '["sl/sub",1]', '["sl/sub",1,"news/a",{"epoch":"e"}]', '["sl/unsub",1,"news/a",5]',
             '["sl/ok",1]', '["sl/err",1,"oops"]', '["sl/close",{"code":"x"}]']
    # (in two connections: more than 20 would pass the violation allowance)
    for part in (texts[:11], texts[11:]):
        async with await Peer.open(srv, "json") as p:
            for text in part:
                await p.send_raw(text)
                f = await p.recv()
                if text.startswith(('["sl/sub",1', '["sl/unsub",1')):
                    # malformed after a valid id: answered to that id (section 3)
                    assert f[:2] == ["sl/err", 1] and f[2]["code"] == "bad-frame", f"{text}: {f}"
                else:
                    assert_error(f, "bad-frame")
            assert (await p.request(["test/echo", {"text": "on"}, 1]))[0] == "sl/ok"


# ---------------------------------------------------------------- postcard: ids, deadlines, bytes


def pc_request(key_id, req_id: bytes, deadline: bytes, payload: bytes):
    return b"\x01" + enc_varint(key_of(key_id)) + req_id + deadline + payload


async def test_postcard_request_ids_are_u64(srv):
    async with await Peer.open(srv, "postcard") as p:
        for rid in (2**53, 2**64 - 1):
            assert await p.request(["test/echo", {"text": "big"}, rid]) == ["sl/ok", rid, echoed(p, "big")]


async def test_postcard_bad_deadline_answered_to_the_id(srv):
    async with await Peer.open(srv, "postcard") as p:
        payload = codec.TEXT.enc({"text": "x"})
        cases = [
            (1, b"\x01" + enc_varint(2**32)),  # over u32
            (2, b"\x02\x05"),  # a bad option tag
            (3, b"\x01\x85\x00"),  # an overlong varint
            (4, b"\x01"),  # runs past the end (the payload follows: taken as the deadline)
        ]
        for rid, deadline in cases:
            await p.send_raw(pc_request("test/echo", enc_varint(rid), deadline,
                                        payload if rid != 4 else b""))
            p.expect_reply(rid, ECHOED)
            assert_err(await p.recv(), rid, "bad-frame")
        assert (await p.request(["test/echo", {"text": "on"}, 9]))[0] == "sl/ok"


async def test_postcard_overlong_header_varints_bad_frame(srv):
    async with await Peer.open(srv, "postcard") as p:
        payload = codec.TEXT.enc({"text": "x"})
        key = enc_varint(key_of("test/echo"))  # 5 bytes: one more never terminates a u32
        for raw in [
            b"\x86\x00\x03",  # kind 6 (ping) written in two bytes
            b"\x06\x83\x00",  # ping 3 with an overlong n
            b"\x81\x00" + key + b"\x07\x00" + payload,  # request, the kind overlong
            b"\x01" + key[:-1] + bytes([key[-1] | 0x80]) + b"\x00\x01\x00" + payload,
            b"\x00\x83\x00" + payload,  # event, key 3 overlong: bad-frame, not bad-event
        ]:
            await p.send_raw(raw)
            assert_error(await p.recv(), "bad-frame")
        # Section 4: a request or unsubscribe whose req_id can be read, even written
        # overlong, is answered to that id.
        await p.send_raw(b"\x01" + key + b"\x81\x00\x00" + payload)
        p.expect_reply(1, ECHOED)
        assert_err(await p.recv(), 1, "bad-frame")
        await p.send_raw(b"\x09\x82\x00\x06news/a")  # unsubscribe 2, req_id overlong
        p.expect_reply(2, UNIT)
        assert_err(await p.recv(), 2, "bad-frame")
        await p.silence(0.2)


async def test_postcard_overlong_payload_varint_may_be_accepted(srv):
    async with await Peer.open(srv, "postcard") as p:
        await p.send_raw(pc_request("test/slow", b"\x01", b"\x00", b"\x83\x00"))
        p.expect_reply(1, U64)
        f = await p.recv()
        assert f == ["sl/ok", 1, 3] or (f[:2] == ["sl/err", 1] and f[2]["code"] == "bad-payload"), f


async def test_postcard_trailing_bytes_after_a_header_bad_frame(srv):
    async with await Peer.open(srv, "postcard") as p:
        await p.send_raw(b"\x06\x03\x00")  # ping 3 + one byte
        assert_error(await p.recv(), "bad-frame")
        await p.send_raw(b"\x0a" + codec.STR.enc("a/b") + codec.STR.enc("m") + b"\x00\x00")
        assert_error(await p.recv(), "bad-frame")
        # sl/sub and sl/unsub with a trailing byte: their id could be read (section 4)
        await p.send_raw(b"\x08\x05\x06news/t\x00\x00")
        p.expect_reply(5, SUB_REPLY)
        assert_err(await p.recv(), 5, "bad-frame")
        await p.send_raw(b"\x09\x06\x06news/t\x00")
        p.expect_reply(6, UNIT)
        assert_err(await p.recv(), 6, "bad-frame")
        await p.silence(0.2)


async def test_postcard_malformed_frames_bad_frame(srv):
    async with await Peer.open(srv, "postcard") as p:
        for raw in [b"", b"\x01", b"\x06", b"\x00\x92\xf8", b"\x0a\x05ab",
                    b"\x0b\x01a\x01m\x02", b"\xff\xff\xff\xff\xff\xff"]:
            await p.send_raw(raw)
            assert_error(await p.recv(), "bad-frame")
        # a subscribe cut after its id: answered to the id (section 4)
        await p.send_raw(b"\x08\x01")
        p.expect_reply(1, SUB_REPLY)
        assert_err(await p.recv(), 1, "bad-frame")
        assert (await p.request(["test/echo", {"text": "on"}, 1]))[0] == "sl/ok"


# ---------------------------------------------------------------- sl/ frames a server does not take


async def test_unknown_sl_frames_bad_frame(srv, enc):
    async with await Peer.open(srv, enc) as p:
        if enc == "json":
            raws = ['["sl/nope",1]', '["sl/presences",1,"news/a",true]', '["sl/",1]']
        else:
            raws = [b"\x0e", b"\x0e\x01\x02", b"\x7f", b"\x80\x01"]
        for raw in raws:
            await p.send_raw(raw)
            assert_error(await p.recv(), "bad-frame")
        assert (await p.request(["test/echo", {"text": "on"}, 1]))[0] == "sl/ok"


async def test_frames_in_the_wrong_direction_bad_frame(srv, enc):
    hs = ["sl/handshake", {"version": 1, "conn_id": 1, "user_id": None,
                           "heartbeat": {"interval_ms": 1, "timeout_ms": 1},
                           "schema_hash": "0000000000000000", "max_message_size": 1,
                           "extensions": [],
                           "limits": {"max_in_flight": 1, "rate_per_sec": 1, "rate_burst": 1,
                                      "max_subscriptions": 1, "max_channel_name": 1}}]
    pub = ["sl/pub", "news/dir", "test/news", {"text": "x"}]
    pub_at = ["sl/pub", "news/dir", "test/news", {"text": "x"}, {"epoch": "e", "offset": 1}]
    diff = ["sl/presence-diff", "news/dir", {"joined": [{"user_id": "ada", "info": {"name": "A"}}],
                                             "left": ["bob"]}]
    resub = ["sl/resub", {"channel": "news/dir"}]
    async with await Peer.open(srv, enc) as p:
        await p.request(["sl/sub", 1, "news/dir"])
        for frame in (hs, pub, pub_at, diff, resub):
            await p.send(frame)
            assert_error(await p.recv(), "bad-frame")
        await p.silence(0.2)  # the client's sl/pub was not published


async def test_fragmented_message_is_one_frame(srv):
    ws = await RawWS.open(srv)
    try:
        hs = json_frames([await ws.recv_frame()])
        assert hs[0][0] == "sl/handshake"
        await ws.send(0x1, b'["test/echo",{"te', fin=False)
        await ws.send(0x9, b"mid-message ping")  # a control frame between fragments
        await ws.send(0x0, b'xt":"frag"},', fin=False)
        await ws.send(0x0, b"1]")
        got = []
        while len(got) < 2:
            got.append(await ws.recv_frame())
        ops = sorted(op for op, _ in got)
        assert ops == [0x1, 0xA], got  # the pong, and the reply
        reply = [json_frames([g])[0] for g in got if g[0] == 0x1][0]
        assert reply[:2] == ["sl/ok", 1] and reply[2]["text"] == "frag", reply
        assert [pl for op, pl in got if op == 0xA] == [b"mid-message ping"]
    finally:
        ws.close()


async def test_client_close_answered_with_close_only(srv, enc):
    proto = "sente-lite.json.v1" if enc == "json" else "sente-lite.postcard.v1"
    ws = await RawWS.open(srv, protocol=proto)
    try:
        await ws.recv_frame()  # the handshake
        close = ["sl/close", {"code": "bye", "message": "done", "reconnect_after_ms": None}]
        if enc == "json":
            await ws.send(0x1, codec.json_encode(close).encode())
        else:
            await ws.send(0x2, codec.pc_encode(close))
        await ws.send_close(1000, b"bye")
        frames, code, end = await ws.recv_until_close()
        assert frames == [] and code == 1000 and end == "eof", (frames, code, end)
    finally:
        ws.close()
