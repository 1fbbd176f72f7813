"""Section 2, "Schema hash": the description at `GET /schema`, its canonical JSON
and hash, and the hash in the handshake of both encodings."""

import json

import codec
from harness import Peer, Server, http

SERVER_ARGS = ()


async def get_schema(srv):
    request = f"GET /schema HTTP/1.1\r\nHost: {srv.addr}\r\nConnection: close\r\n\r\n"
    return await http(srv, request.encode())


async def test_description_is_published_and_hashes_to_the_handshake(srv, enc):
    status, headers, body = await get_schema(srv)
    assert status == 200, status
    assert headers["content-type"][0].startswith("application/json"), headers["content-type"]
    assert headers["access-control-allow-origin"] == ["*"], headers
    description = json.loads(body)
    assert description["version"] == 1
    events = description["events"]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids), "events are sorted by id"
    # The application's events, and not the library's (`telemetry/batch`).
    assert set(ids) == set(codec.EVENTS), sorted(set(ids) ^ set(codec.EVENTS))
    computed = codec.schema_hash(events)
    assert description["schema_hash"] == computed, (description["schema_hash"], computed)
    async with await Peer.open(srv, enc) as p:
        assert p.handshake["schema_hash"] == computed


async def test_description_matches_the_events_wire_types(srv):
    _, _, body = await get_schema(srv)
    for event in json.loads(body)["events"]:
        kind, payload, reply = codec.EVENTS[event["id"]]
        assert event["kind"] == kind, event["id"]
        assert ("reply" in event) == (kind == "request"), event["id"]
        # A struct's fields, in the order postcard sends them.
        if isinstance(payload, codec.Struct):
            assert event["payload"]["type"] == "object", event
            assert list(event["payload"]["properties"]) == [n for n, _ in payload.fields], event
        if isinstance(reply, codec.Struct):
            assert list(event["reply"]["properties"]) == [n for n, _ in reply.fields], event


async def test_unpublished_description_is_not_found():
    async with Server("--no-schema") as srv:
        status, _, _ = await get_schema(srv)
        assert status == 404, status
