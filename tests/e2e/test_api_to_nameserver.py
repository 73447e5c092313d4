"""An edit made over HTTP is served by a separate nameserver process over
UDP, and the API's change status turns INSYNC once it reports serving it."""

from __future__ import annotations

import asyncio
import time

import dns.asyncquery
import dns.message
import dns.rdatatype

from storage.db import Database
from tests.e2e.nameserver_process import running_nameserver
from tests.integration.test_api_harness import (
    allowlist,
    running_api,
    seed_account,
    seed_token,
    seed_zone,
)


async def _addresses(port: int, qname: str) -> set[str]:
    reply = await dns.asyncquery.udp(dns.message.make_query(qname, "A"), "127.0.0.1",
                                     port=port, timeout=1.0)
    return {r.to_text() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A
            for r in rrset}


async def test_http_edit_is_served_over_udp(db: Database, cli_env: dict[str, str]) -> None:
    async with running_api(db) as api:
        leader = await seed_account(api, "live")
        await allowlist(api, leader, ["127.0.0.0/8"])
        await seed_zone(api, leader, "served.example")
        token = await seed_token(api, leader)
        with running_nameserver(cli_env, "served.example.") as port:
            assert await _addresses(port, "www.served.example.") == {"192.0.2.2"}
            edit = await api.client.call(
                "PUT", "/api/v1/zones/served.example/rrsets/www/A", token=token,
                json_body={"ttl": 300, "records": ["198.51.100.7", "198.51.100.8"]})
            assert edit.status == 200, edit.text
            written = time.monotonic()
            wanted = {"198.51.100.7", "198.51.100.8"}
            while await _addresses(port, "www.served.example.") != wanted:
                assert time.monotonic() - written < 10, "the edit was not served within 10 s"
                await asyncio.sleep(0.01)
            change = f"/api/v1/changes/{edit.body['change_id']}"
            while (await api.client.call("GET", change, token=token)).body["status"] != "INSYNC":
                assert time.monotonic() - written < 30, "the change never became INSYNC"
                await asyncio.sleep(0.2)
