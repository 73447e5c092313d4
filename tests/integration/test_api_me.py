"""GET /api/v1/me reads the user with plain driver SQL: its answer is the
ORM's accounts.user_json() of the same user, field for field."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from storage.db import Database
from storage.models import User
from tests.integration.test_api_harness import (
    ApiServer,
    running_api,
    seed_account,
    seed_token,
    seed_user,
)
from zoneapi.jsonio import dumps
from zoneapi.services import accounts


@pytest.fixture
async def api(db: Database) -> AsyncIterator[ApiServer]:
    async with running_api(db) as server:
        yield server


async def test_me_is_the_users_json(api: ApiServer) -> None:
    leader = await seed_account(api, "mira")
    user = await seed_user(api, leader, "mira-ops", "user")
    async with api.db.write() as session:  # every field set, none at its default
        row = await session.get(User, user.user_id)
        assert row is not None
        row.mobile, row.mobile_verified = "+41790000000", True
        row.totp_confirmed_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    for login in (leader, user):
        reply = await api.client.call("GET", "/api/v1/me", token=await seed_token(api, login))
        assert reply.status == 200
        async with api.db.read() as session:
            stored = await session.get(User, login.user_id)
            assert stored is not None
            expected = accounts.user_json(stored)
        body = dict(reply.body)
        assert body.pop("account_status") == "active"
        assert body.pop("credential").startswith("token:")
        assert body.pop("source_ip") == "127.0.0.1"
        assert body == json.loads(dumps(expected))
    assert reply.body["totp_enabled"] is True and reply.body["role"] == "user"
