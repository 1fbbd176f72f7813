"""Section 5, Opening: the checks before `101`, in their order, and the HTTP timeouts."""

import asyncio
import base64
import os

from harness import (JSON_PROTO, Peer, Server, background, http, read_http_response,
                     upgrade_head)

SERVER_ARGS = ()


async def status_of(srv, **kw):
    status, headers, body = await http(srv, upgrade_head(srv, **kw))
    if status != 101:
        text = body.decode("utf-8")
        assert text.strip() and "\n" not in text.strip(), f"{status}: not a one-line body: {body!r}"
    return status


async def test_host_names_answered(srv):
    port = srv.port
    for host in [srv.addr, f"localhost:{port}", "localhost", "localhost:1", "app.localhost:8080",
                 f"127.0.0.1:{port}", "127.9.8.7:65000", "127.1.2.3", "[::1]:80", "[::1]"]:
        assert await status_of(srv, host=host) == 101, f"Host {host} refused"


async def test_other_host_names_refused_403(srv):
    for host in ["evil.example", f"evil.example:{srv.port}", "localhost.evil.example",
                 "127.0.0.1.evil.example", "10.0.0.1", "[::2]:80", "localhostx"]:
        assert await status_of(srv, host=host) == 403, f"Host {host} answered"


async def test_exactly_one_host_is_named(srv):
    # Section 5: one Host header, or the authority of an absolute-form target.
    assert await status_of(srv, host=False) == 400, "an HTTP/1.1 upgrade without Host"
    two = upgrade_head(srv, extra=("Host: evil.example",))
    status, _, _ = await http(srv, two)
    assert status == 400, f"two Host headers answered {status}"
    get = b"GET /sente-lite.js HTTP/1.1\r\nConnection: close\r\n\r\n"
    status, _, _ = await http(srv, get)
    assert status == 400, f"a GET without Host was answered {status}"
    old = b"GET /sente-lite.js HTTP/1.0\r\n\r\n"
    status, _, _ = await http(srv, old)
    assert status == 403, f"an HTTP/1.0 GET without Host (no name) was answered {status}"
    absolute = (f"GET http://evil.example:{srv.port}/sente-lite.js HTTP/1.1\r\n"
                f"Host: {srv.addr}\r\nConnection: close\r\n\r\n").encode()
    status, _, _ = await http(srv, absolute)
    assert status == 403, f"an absolute target for another host was answered {status}"
    absolute = (f"GET http://{srv.addr}/sente-lite.js HTTP/1.1\r\n"
                f"Host: {srv.addr}\r\nConnection: close\r\n\r\n").encode()
    status, _, _ = await http(srv, absolute)
    assert status == 200, f"an absolute target for this host was answered {status}"


async def test_host_checked_on_every_http_request(srv):
    ok = f"GET /sente-lite.js HTTP/1.1\r\nHost: {srv.addr}\r\nConnection: close\r\n\r\n".encode()
    status, _, body = await http(srv, ok)
    assert status == 200 and body, status
    bad = b"GET /sente-lite.js HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    status, _, _ = await http(srv, bad)
    assert status == 403


async def test_host_checked_first(srv):
    # Everything else wrong too: the Host answer comes first.
    assert await status_of(srv, host="evil.example", method="POST", upgrade=None, connection=None,
                           key=None, version=None, origin="http://evil.example",
                           protocols="mqtt", path="/ws?name=intruder") == 403


async def test_not_an_upgrade_426(srv):
    assert await status_of(srv, method="POST") == 426
    assert await status_of(srv, upgrade=None) == 426
    assert await status_of(srv, connection="keep-alive") == 426
    assert await status_of(srv, upgrade="h2c") == 426
    # before the version, the key, the origin, the subprotocol and the authentication
    assert await status_of(srv, method="POST", version="12", key="abc", origin="http://evil.example",
                           protocols="mqtt", path="/ws?name=intruder") == 426


async def test_version_400(srv):
    assert await status_of(srv, version="12") == 400
    assert await status_of(srv, version=None) == 400
    # before the origin, the subprotocol and the authentication
    assert await status_of(srv, version="8", origin="http://evil.example") == 400
    assert await status_of(srv, version="8", path="/ws?name=intruder") == 400


async def test_bad_key_400(srv):
    keys = [None, "abc", base64.b64encode(os.urandom(15)).decode(),
            base64.b64encode(os.urandom(18)).decode(), "!" * 24]
    for key in keys:
        assert await status_of(srv, key=key) == 400, f"key {key!r} taken"
    assert await status_of(srv, key="abc", origin="http://evil.example") == 400
    assert await status_of(srv, key="abc", path="/ws?name=intruder") == 400


async def test_origin_policy_403(srv):
    assert await status_of(srv, origin=f"http://{srv.addr}") == 101
    assert await status_of(srv, origin="http://evil.example") == 403
    assert await status_of(srv, origin=f"http://{srv.host}:1") == 403
    # before the subprotocol and the authentication
    assert await status_of(srv, origin="http://evil.example", protocols="mqtt") == 403
    assert await status_of(srv, origin="http://evil.example", path="/ws?name=intruder") == 403


async def test_subprotocol_before_authentication(srv):
    assert await status_of(srv, protocols="mqtt", path="/ws?name=intruder") == 400
    assert await status_of(srv, protocols=f"mqtt, {JSON_PROTO}", path="/ws?name=ada") == 101


async def test_authentication_refused_401(srv):
    assert await status_of(srv, path="/ws?name=intruder") == 401
    assert await status_of(srv, path="/ws?name=intruder", protocols=JSON_PROTO) == 401
    assert await status_of(srv, path="/ws?name=ada") == 101


async def probe(srv, query, origin=None):
    lines = [f"GET /ws?{query} HTTP/1.1", f"Host: {srv.addr}", "Connection: close"]
    if origin:
        lines.append(f"Origin: {origin}")
    return await http(srv, ("\r\n".join(lines) + "\r\n\r\n").encode())


async def test_probe_answers_what_the_upgrade_would(srv):
    status, headers, body = await probe(srv, "name=ada&sl_probe=1")
    assert status == 204 and body == b"", (status, body)
    assert headers["cache-control"] == ["no-store"], headers
    status, headers, body = await probe(srv, "sl_probe=1&name=intruder")
    assert status == 401, status
    assert body.decode().strip() == "not you" and body.count(b"\n") == 1, body
    # An allowed origin may read the answer, with credentials.
    status, headers, _ = await probe(srv, "name=intruder&sl_probe=1", origin=f"http://{srv.addr}")
    assert status == 401
    assert headers["access-control-allow-origin"] == [f"http://{srv.addr}"], headers
    assert headers["access-control-allow-credentials"] == ["true"], headers
    assert "origin" in ",".join(headers["vary"]).lower(), headers
    # Another origin is refused as its upgrade would be, unreadable to it.
    status, headers, _ = await probe(srv, "name=ada&sl_probe=1", origin="http://evil.example")
    assert status == 403
    assert "access-control-allow-origin" not in headers, headers
    # Without `sl_probe=1`, a plain GET is still not an upgrade.
    status, _, _ = await probe(srv, "name=ada")
    assert status == 426


@background
async def test_request_head_within_10_s():
    async with Server() as srv:
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            # A head trickling in, one line every 2 s, still has to be complete in 10 s.
            writer.write(b"GET /ws HTTP/1.1\r\n")
            lines = [f"Host: {srv.addr}\r\n", "Upgrade: websocket\r\n", "Connection: Upgrade\r\n",
                     "Sec-WebSocket-Version: 13\r\n", "X-A: 1\r\n", "X-B: 2\r\n", "X-C: 3\r\n"]
            closed_at = None
            for line in lines:
                try:
                    data = await asyncio.wait_for(reader.read(1024), 2.0)
                except asyncio.TimeoutError:
                    writer.write(line.encode())
                    continue
                assert not data.startswith(b"HTTP/1.1 101"), data
                closed_at = loop.time() - start
                break
            if closed_at is None:
                data = await asyncio.wait_for(reader.read(), 6)
                assert not data.startswith(b"HTTP/1.1 101"), data
                closed_at = loop.time() - start
            assert 8.0 <= closed_at <= 13.0, f"closed after {closed_at:.1f} s, want 10 s"
        finally:
            writer.close()


@background
async def test_kept_alive_connection_closed_10_s_after_the_answer():
    async with Server() as srv:
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        loop = asyncio.get_running_loop()
        try:
            writer.write(f"GET /sente-lite.js HTTP/1.1\r\nHost: {srv.addr}\r\n\r\n".encode())
            status, headers, body = await read_http_response(reader)
            assert status == 200
            answered = loop.time()
            data = await asyncio.wait_for(reader.read(), 15)
            assert data == b"", data
            waited = loop.time() - answered
            assert 8.0 <= waited <= 13.0, f"closed after {waited:.1f} s, want 10 s"
        finally:
            writer.close()


@background
async def test_http_timeouts_do_not_apply_after_the_upgrade():
    async with Server() as srv:
        async with await Peer.open(srv, "json") as p:
            await p.silence(12)
            f = await p.request(["test/echo", {"text": "still here"}, 1])
            assert f[0] == "sl/ok", f


async def test_connections_per_address_429():
    async with Server("--max-connections-per-address", 2) as srv:
        a = await Peer.open(srv, "json")
        # an HTTP connection counts before its upgrade too
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        writer.write(b"GET /ws HTTP/1.1\r\n")  # a head on its way
        await asyncio.sleep(0.3)  # for the server to have taken the connection
        try:
            status, _, body = await http(srv, upgrade_head(srv))
            assert status == 429, status
            assert body.strip() and b"\n" not in body.strip(), body
            status, _, _ = await http(srv, b"GET /sente-lite.js HTTP/1.1\r\nHost: "
                                      + srv.addr.encode() + b"\r\n\r\n")
            assert status == 429, status
            # ... and is closed after the answer (both slots still held)
            r2, w2 = await asyncio.open_connection(srv.host, srv.port)
            w2.write(upgrade_head(srv))
            status, _, _ = await read_http_response(r2)
            assert status == 429, status
            assert await asyncio.wait_for(r2.read(), 3) == b"", "not closed after the 429"
            w2.close()
        finally:
            writer.close()
        # room again once a connection ends
        await a.close()
        await asyncio.sleep(0.3)
        for _ in range(20):
            if (await http(srv, upgrade_head(srv)))[0] == 101:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("no room after the connections ended")
