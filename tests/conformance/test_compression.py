"""Section 4, Compressed frames (extension `compression`), against a server
started with `--compress-min-bytes 1024`: large frames reach a client that
named the extension as kind 17 (raw DEFLATE of the frame inside), on either
encoding; the server reads compressed frames, stops a bomb at its size limit
(`too-large`, 1009) and answers a malformed one `bad-frame`."""

import zlib

import codec
from harness import Peer, Server, assert_error

ARGS = ("--compress-min-bytes", 1024, "--max-message-size", 262144)


def words(n):
    ws = ["room", "lobby", "hello", "world", "typed", "events"]
    out = " ".join(ws[(i * 7) % len(ws)] for i in range(n))
    return out


def deflate(data: bytes, level=6) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def inflate(data: bytes) -> bytes:
    d = zlib.decompressobj(-15)
    return d.decompress(data) + d.flush()


async def test_compressed_frames(enc):
    async with Server(*ARGS) as srv:
        async with await Peer.open(srv, enc) as plain, await Peer.open(srv, enc) as p:
            assert "compression" in p.handshake["extensions"], p.handshake
            big = words(3000)
            # Not named: the reply comes as it is.
            f = await plain.request(["test/echo", {"text": big}, 1])
            assert f[2]["text"] == big
            # Named: the reply is kind 17, `00`/`01` for the encoding inside.
            await p.send(["sl/extensions", ["compression"]])
            request = p.encode(["test/echo", {"text": big}, 2])
            p.expect_reply(2, codec.ECHOED)
            raw = request.encode() if isinstance(request, str) else request
            inner = b"\x00" if enc == "json" else b"\x01"
            # Sent compressed, too: the server reads compressed frames.
            await p.send_raw(b"\x11" + inner + deflate(raw))
            msg = await p.recv_msg()
            assert isinstance(msg, bytes) and msg[:2] == b"\x11" + inner, msg[:8]
            assert len(msg) < len(big) // 3
            inside = inflate(msg[2:])
            frame = p.decode(inside.decode() if enc == "json" else inside)
            assert frame[:2] == ["sl/ok", 2] and frame[2]["text"] == big, frame[:2]
            # Small frames are not compressed.
            f = await p.request(["test/echo", {"text": "small"}, 3])
            assert f[2]["text"] == "small"

            # Malformed: not DEFLATE; an unknown inside encoding.
            for bad in (b"\x11\x00\xff\xff\xff", b"\x11\x07" + deflate(b"[]"), b"\x11"):
                await p.send_raw(bad)
                assert_error(await p.recv(), "bad-frame")
            # A bomb: 10 MiB in a few KiB, over the 256 KiB limit.
            await p.send_raw(b"\x11" + inner + deflate(b" " * (10 << 20), 9))
            assert_error(await p.recv(), "too-large")
            await p.expect_close(1009)


async def test_not_offered_is_an_unknown_kind(enc):
    async with Server() as srv:
        async with await Peer.open(srv, enc) as p:
            assert "compression" not in p.handshake["extensions"]
            await p.send_raw(b"\x11\x00" + deflate(b'["sl/ping",1]'))
            assert_error(await p.recv(), "bad-frame")
