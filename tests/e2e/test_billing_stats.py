"""Query statistics end to end: a real `zonehost nameserver` answers queries
sent with dnspython, flushes its per-zone counters into the store every
second, and the domain's statistics are read back over the HTTP API."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode

from storage.db import Database
from tests.integration.test_api_harness import (
    ApiServer,
    running_api,
    seed_account,
    seed_token,
    seed_user,
    seed_zone,
)
from tests.unit.billing.support import add_domain

STATS = "/api/v1/billing/domains/stats.fr/stats"


async def ask(port: int, qname: str, qtype: str, *, tcp: bool = False) -> int:
    query = dns.message.make_query(qname, qtype)
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return (await send(query, "127.0.0.1", port=port, timeout=5.0)).rcode()


async def stats_once_flushed(api: ApiServer, token: str, **want: int) -> dict[str, Any]:
    """The statistics once the nameserver's flushes show at least `want` queries of
    each type (20 s at most)."""
    deadline = time.monotonic() + 20
    while True:
        reply = await api.client.call("GET", STATS, token=token)
        assert reply.status == 200, reply.text
        seen = reply.body["by_qtype"]
        if all(seen.get(t, 0) >= n for t, n in want.items()) or time.monotonic() > deadline:
            return dict(reply.body)
        await asyncio.sleep(0.2)


async def test_queries_answered_by_the_nameserver_reach_the_statistics(
    db: Database, cli_env: dict[str, str]
) -> None:
    from tests.e2e.nameserver_process import running_nameserver

    env = {**cli_env, "ZONEHOST_NAMESERVER_STATS_FLUSH": "1"}
    async with running_api(db) as api:
        leader = await seed_account(api, "acme")
        rival = await seed_account(api, "rival")
        nobody = await seed_user(api, leader, "carol", "user")  # no right on any domain
        await seed_zone(api, leader, "stats.fr")
        await seed_zone(api, leader, "quiet.fr")
        today = datetime.now(UTC).date()
        await add_domain(db, leader.account_id, "stats.fr", today + timedelta(days=200))
        token = await seed_token(api, leader)

        with running_nameserver(env, "stats.fr.") as port:  # its probes are SOA queries
            for _ in range(5):
                assert await ask(port, "www.stats.fr.", "A") == dns.rcode.NOERROR
            for name in ("nope.stats.fr.", "gone.stats.fr.", "x.y.stats.fr."):
                assert await ask(port, name, "AAAA") == dns.rcode.NXDOMAIN
            assert await ask(port, "stats.fr.", "MX", tcp=True) == dns.rcode.NOERROR
            assert await ask(port, "www.quiet.fr.", "A") == dns.rcode.NOERROR  # another zone
            assert await ask(port, "www.elsewhere.example.", "A") == dns.rcode.REFUSED
            body = await stats_once_flushed(api, token, A=5, AAAA=3, MX=1)

        assert body["by_qtype"]["A"] == 5 and body["by_qtype"]["AAAA"] == 3
        assert body["by_qtype"]["MX"] == 1 and body["by_qtype"]["SOA"] >= 1
        assert body["by_rcode"]["NXDOMAIN"] == 3 and "REFUSED" not in body["by_rcode"]
        assert body["by_rcode"]["NOERROR"] == body["total"] - 3
        assert body["days"][-1] == {"day": today.isoformat(), "queries": body["total"]}
        rows = {(r["qtype"], r["rcode"]): r["queries"] for r in body["rows"]}
        assert rows[("A", "NOERROR")] == 5 and rows[("AAAA", "NXDOMAIN")] == 3
        assert {r["day"] for r in body["rows"]} == {today.isoformat()}

        csv = await api.client.call("GET", STATS, token=token, params={"format": "csv"})
        assert f"{today.isoformat()},A,NOERROR,5" in csv.text.splitlines()
        # Another client, and a user of the account with no right, do not see it.
        for other in (await seed_token(api, rival), await seed_token(api, nobody)):
            assert (await api.client.call("GET", STATS, token=other)).status == 404
