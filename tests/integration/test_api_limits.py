"""Request rate limits: per token and per source address, 429 with Retry-After."""

from __future__ import annotations

from storage.db import Database
from tests.integration.test_api_harness import api_config, running_api, seed_account, seed_token
from zoneapi.config import RateLimit


async def test_rate_limits_per_token_and_per_address(db: Database) -> None:
    config = api_config(rate_per_token=RateLimit(0.01, 3), rate_per_address=RateLimit(0.01, 8))
    async with running_api(db, config) as api:
        leader = await seed_account(api, "busy")
        first, second = await seed_token(api, leader), await seed_token(api, leader)
        statuses = [(await api.client.call("GET", "/api/v1/me", token=first)).status
                    for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = await api.client.call("GET", "/api/v1/me", token=first)
        assert limited.code == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
        # Another token has its own bucket, until the address's bucket runs dry too.
        assert (await api.client.call("GET", "/api/v1/me", token=second)).status == 200
        # Six requests so far from 127.0.0.1; the address allows a burst of eight.
        replies = [await api.client.call("GET", "/api/v1/health") for _ in range(3)]
        assert [r.status for r in replies] == [200, 200, 429]
        assert int(replies[2].headers["Retry-After"]) >= 1
