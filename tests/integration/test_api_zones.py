"""Zone editing over HTTP: RRsets, single records, atomic PATCH with
per-item errors, dry runs, ETag/If-Match, master files, history and
restore, change propagation status, limits and hostile input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from storage.db import Database
from storage.models import AuditEntry, ZoneChange
from storage.models.billing import Domain, DomainStatus
from storage.nsstatus import report_applied
from tests.integration.test_api_harness import (
    ApiServer,
    Login,
    allowlist,
    api_config,
    running_api,
    seed_account,
    seed_token,
    seed_zone,
)
from tests.unit.billing.support import add_domain

Z = "/api/v1/zones/example.com"


@dataclass
class World:
    api: ApiServer
    token: str
    leader: Login


@pytest.fixture
async def world(db: Database) -> AsyncIterator[World]:
    async with running_api(db, api_config(max_rrsets_per_request=50,
                                          max_records_per_zone=40)) as api:
        leader = await seed_account(api, "acme")
        await allowlist(api, leader, ["127.0.0.0/8"])
        await seed_zone(api, leader, "example.com")
        yield World(api, await seed_token(api, leader), leader)


async def _count(db: Database, model: Any) -> int:
    async with db.read() as session:
        return int((await session.execute(select(func.count(model.id)))).scalar_one())


async def test_list_and_read(world: World) -> None:
    c, t = world.api.client, world.token
    zones = await c.call("GET", "/api/v1/zones", token=t)
    assert [z["name"] for z in zones.body["items"]] == ["example.com."]
    zone = await c.call("GET", Z, token=t)
    assert zone.status == 200 and zone.headers["ETag"] == f'"{zone.body["serial"]}"'
    assert "edit_nameservers" in zone.body["rights"]
    sets = await c.call("GET", Z + "/rrsets", token=t)
    assert {(s["subname"], s["type"]) for s in sets.body["items"]} >= {
        ("", "SOA"), ("", "NS"), ("www", "A"), ("mail", "MX")}
    one = await c.call("GET", Z + "/rrsets/www/A", token=t)
    assert one.body["records"] == ["192.0.2.2"]
    filtered = await c.call("GET", Z + "/rrsets", token=t, params={"type": "mx"})
    assert [s["type"] for s in filtered.body["items"]] == ["MX"]
    assert (await c.call("GET", Z + "/rrsets/nope/A", token=t)).status == 404
    idn = await c.call("GET", "/api/v1/zones/EXAMPLE.com.", token=t)
    assert idn.status == 200


async def test_rrset_lifecycle_and_single_records(world: World) -> None:
    c, t = world.api.client, world.token
    created = await c.call("POST", Z + "/rrsets", token=t, json_body={
        "name": "api", "type": "AAAA", "ttl": 600, "records": ["2001:db8::1"]})
    assert created.status == 201 and created.body["change_id"] > 0
    assert created.body["diff"]["added"][0]["content"] == "2001:db8::1"
    dup = await c.call("POST", Z + "/rrsets", token=t, json_body={
        "name": "api", "type": "AAAA", "records": ["2001:db8::2"]})
    assert dup.status == 409
    add = await c.call("POST", Z + "/rrsets/api/AAAA/records", token=t,
                       json_body={"content": "2001:DB8::2"})
    assert add.status == 200
    got = await c.call("GET", Z + "/rrsets/api/AAAA", token=t)
    assert got.body["records"] == ["2001:db8::1", "2001:db8::2"] and got.body["ttl"] == 600
    rm = await c.call("DELETE", Z + "/rrsets/api/AAAA/records", token=t,
                      params={"content": "2001:db8::1"})
    assert rm.status == 200
    assert (await c.call("GET", Z + "/rrsets/api/AAAA", token=t)).body["records"] == \
        ["2001:db8::2"]
    put = await c.call("PUT", Z + "/rrsets/@/TXT", token=t,
                       json_body={"ttl": 300, "records": ['"v=spf1 -all"']})
    assert put.status == 200
    gone = await c.call("DELETE", Z + "/rrsets/api/AAAA", token=t)
    assert gone.status == 200 and gone.body["diff"]["removed"]
    assert (await c.call("GET", Z + "/rrsets/api/AAAA", token=t)).status == 404


async def test_patch_is_atomic_with_per_item_errors(world: World) -> None:
    c, t, db = world.api.client, world.token, world.api.db
    before = await _count(db, ZoneChange)
    bad = await c.call("PATCH", Z + "/rrsets", token=t, json_body=[
        {"name": "ok", "type": "A", "ttl": 300, "records": ["192.0.2.9"]},
        {"name": "bad", "type": "A", "ttl": 300, "records": ["999.1.1.1"]},
        {"name": "x", "type": "MX", "ttl": 300, "records": ["not an mx"]},
        {"name": "t", "type": "SOA", "ttl": 300, "records": ["a. b. 1 2 3 4 5"]},
        {"name": "ttl", "type": "A", "ttl": 1, "records": ["192.0.2.1"]},
    ])
    assert bad.status == 422 and bad.code == "invalid_rrsets"
    assert [e["index"] for e in bad.body["errors"]] == [1, 2, 3, 4]
    assert all(e["reasons"] for e in bad.body["errors"])
    assert await _count(db, ZoneChange) == before
    assert (await c.call("GET", Z + "/rrsets/ok/A", token=t)).status == 404
    conflict = await c.call("PATCH", Z + "/rrsets", token=t, json_body=[
        {"name": "www", "type": "CNAME", "ttl": 300, "records": ["example.net."]}])
    assert conflict.status == 422 and conflict.code == "zone_conflict"
    good = await c.call("PATCH", Z + "/rrsets", token=t, json_body=[
        {"name": "a", "type": "A", "ttl": 300, "records": ["192.0.2.10"]},
        {"name": "b", "type": "A", "ttl": 300, "records": ["192.0.2.11"]},
        {"name": "www", "type": "A", "records": []},
    ])
    assert good.status == 200
    assert len(good.body["diff"]["added"]) == 2 and len(good.body["diff"]["removed"]) == 1
    assert await _count(db, ZoneChange) == before + 1
    async with db.read() as session:
        entry = (await session.execute(select(AuditEntry).order_by(AuditEntry.id.desc())
                                       .limit(1))).scalar_one()
    assert entry.change_id == good.body["change_id"]
    assert entry.credential is not None and entry.credential.startswith("token:")
    assert entry.source_ip == "127.0.0.1"


async def test_dry_run_returns_the_exact_diff_and_writes_nothing(world: World) -> None:
    c, t, db = world.api.client, world.token, world.api.db
    body = [{"name": "www", "type": "A", "ttl": 300, "records": ["192.0.2.99"]}]
    before = await _count(db, ZoneChange)
    dry = await c.call("PATCH", Z + "/rrsets", token=t, json_body=body,
                       params={"dry_run": "true"})
    assert dry.status == 200 and dry.body["dry_run"] is True
    assert await _count(db, ZoneChange) == before
    assert (await c.call("GET", Z + "/rrsets/www/A", token=t)).body["records"] == ["192.0.2.2"]
    real = await c.call("PATCH", Z + "/rrsets", token=t, json_body=body)
    assert real.body["diff"] == dry.body["diff"] and real.body["serial"] == dry.body["serial"]


async def test_if_match(world: World) -> None:
    c, t = world.api.client, world.token
    etag = (await c.call("GET", Z, token=t)).headers["ETag"]
    body = {"ttl": 300, "records": ["192.0.2.50"]}
    ok = await c.call("PUT", Z + "/rrsets/x/A", token=t, json_body=body,
                      headers={"If-Match": etag})
    assert ok.status == 200 and ok.headers["ETag"] != etag
    stale = await c.call("PUT", Z + "/rrsets/y/A", token=t, json_body=body,
                         headers={"If-Match": etag})
    assert stale.status == 412 and stale.code == "precondition_failed"
    assert (await c.call("GET", Z + "/rrsets/y/A", token=t)).status == 404


async def test_bulk_replace_and_master_files(world: World) -> None:
    c, t = world.api.client, world.token
    exported = await c.call("GET", Z + "/file", token=t)
    assert exported.status == 200 and exported.headers["Content-Type"].startswith("text/dns")
    assert "SOA" in exported.text and "www" in exported.text
    new_file = exported.text.replace("192.0.2.2", "192.0.2.222") + "new 300 IN A 192.0.2.7\n"
    imported = await c.call("PUT", Z + "/file", token=t, data=new_file,
                            headers={"Content-Type": "text/dns"})
    assert imported.status == 200, imported.text
    assert {a["content"] for a in imported.body["diff"]["added"]} == {"192.0.2.222", "192.0.2.7"}
    broken = await c.call("PUT", Z + "/file", token=t, data="www 300 IN A 1.2.3\n$BOGUS\n",
                          headers={"Content-Type": "text/dns"})
    assert broken.status == 422 and broken.body["errors"]
    wrong_type = await c.call("PUT", Z + "/file", token=t, data="{}",
                              headers={"Content-Type": "application/json"})
    assert wrong_type.status == 415
    replaced = await c.call("PUT", Z + "/rrsets", token=t, json_body=[
        {"name": "@", "type": "NS", "ttl": 3600,
         "records": ["ns1.host.example.", "ns2.host.example."]},
        {"name": "only", "type": "A", "ttl": 300, "records": ["192.0.2.1"]}])
    assert replaced.status == 200
    names = {(s["subname"], s["type"]) for s in
             (await c.call("GET", Z + "/rrsets", token=t)).body["items"]}
    assert names == {("", "SOA"), ("", "NS"), ("only", "A")}


async def test_history_diff_and_restore(world: World) -> None:
    c, t = world.api.client, world.token
    v1 = (await c.call("GET", Z, token=t)).body["serial"]
    await c.call("PUT", Z + "/rrsets/www/A", token=t, json_body={"ttl": 300,
                                                                   "records": ["192.0.2.3"]})
    v2 = (await c.call("DELETE", Z + "/rrsets/mail/MX", token=t)).body["serial"]
    versions = await c.call("GET", Z + "/versions", token=t)
    assert [v["serial"] for v in versions.body["items"]][-3:] == [v1, v1 + 1, v2]
    diff = await c.call("GET", Z + "/diff", token=t, params={"from": str(v1), "to": str(v2)})
    assert {(r["subname"], r["content"]) for r in diff.body["removed"]} == {
        ("www", "192.0.2.2"), ("mail", "10 mx.host.example.")}
    old = await c.call("GET", Z + f"/versions/{v1}", token=t)
    assert any(r["subname"] == "mail" for r in old.body["records"])
    restored = await c.call("POST", Z + f"/versions/{v1}/restore", token=t)
    assert restored.status == 200 and restored.body["serial"] > v2
    assert (await c.call("GET", Z + "/rrsets/mail/MX", token=t)).status == 200
    assert (await c.call("GET", Z + "/rrsets/www/A", token=t)).body["records"] == ["192.0.2.2"]
    assert (await c.call("GET", Z + "/versions/123", token=t)).status == 404


async def test_change_status_follows_nameserver_reports(world: World) -> None:
    c, t = world.api.client, world.token
    change = (await c.call("PUT", Z + "/rrsets/www/A", token=t,
                           json_body={"ttl": 300, "records": ["192.0.2.77"]})).body["change_id"]
    first = await c.call("GET", f"/api/v1/changes/{change}", token=t)
    assert first.body["status"] == "PENDING" and first.body["zone"] == "example.com."
    async with world.api.db.write() as session:
        await report_applied(session, "ns-a", change)
        await report_applied(session, "ns-b", change - 1)
    assert (await c.call("GET", f"/api/v1/changes/{change}", token=t)).body["status"] == "PENDING"
    async with world.api.db.write() as session:
        await report_applied(session, "ns-b", change)
    assert (await c.call("GET", f"/api/v1/changes/{change}", token=t)).body["status"] == "INSYNC"
    assert (await c.call("GET", "/api/v1/changes/999999", token=t)).status == 404


async def test_hostile_zone_names(world: World) -> None:
    for zone in ("..%2F..%2Fetc", "a%00b.com", "x" * 300 + ".com", "com", "-bad-.com",
                 "%E2%80%AE.com", "other.com"):
        reply = await world.api.client.call("GET", f"/api/v1/zones/{zone}", token=world.token)
        assert 400 <= reply.status < 500 and reply.code is not None, zone


async def test_hostile_record_names_and_limits(world: World) -> None:
    c, t = world.api.client, world.token
    for name in ("a..b", "x" * 64, "a b", "../x", "\u0000"):
        reply = await c.call("PATCH", Z + "/rrsets", token=t, json_body=[
            {"name": name, "type": "A", "ttl": 300, "records": ["192.0.2.1"]}])
        assert reply.status == 422, name
    too_many = [{"name": f"h{i}", "type": "A", "ttl": 300, "records": ["192.0.2.1"]}
                for i in range(51)]
    assert (await c.call("PATCH", Z + "/rrsets", token=t, json_body=too_many)).status == 413
    big = [{"name": f"h{i}", "type": "A", "ttl": 300,
            "records": [f"192.0.2.{j}" for j in range(1, 11)]} for i in range(4)]
    full = await c.call("PATCH", Z + "/rrsets", token=t, json_body=big)
    assert full.status == 422 and full.code == "too_many_records"


async def test_non_ascii_digits_are_refused_not_crashing(world: World) -> None:
    # '³'.isdigit() is true but int('³') raises: these once answered 500.
    c, t = world.api.client, world.token
    for path in (f"{Z}/versions/%C2%B3", f"{Z}/rrsets?offset=%C2%B3", f"{Z}/rrsets?limit=%C2%B2",
                 "/api/v1/audit?before=%C2%B3"):
        reply = await c.call("GET", path, token=t)
        assert reply.status < 500 and reply.code != "internal_error", (path, reply.status)
    assert (await c.call("GET", f"{Z}/versions/%C2%B3", token=t)).status == 400
    assert (await c.call("GET", f"{Z}/rrsets?limit=%C2%B2", token=t)).status == 400


async def test_host_a_zone_for_a_domain_of_the_portfolio(world: World) -> None:
    c, t, db = world.api.client, world.token, world.api.db
    expires = date.today() + timedelta(days=365)
    await add_domain(db, world.leader.account_id, "new.example", expires)
    await add_domain(db, world.leader.account_id, "held.example", expires)
    async with db.write() as session:
        await session.execute(update(Domain).where(Domain.name == "held.example.")
                              .values(status=DomainStatus.SUSPENDED))
    rival = await seed_account(world.api, "rival")
    await add_domain(db, rival.account_id, "rival.example", expires)

    made = await c.call("POST", "/api/v1/zones", token=t, json_body={"name": "New.Example"})
    assert made.status == 201, made.text
    assert made.body["name"] == "new.example." and made.body["status"] == "active"
    assert made.body["soa"]["mname"] == "ns1.zonehost.invalid."
    assert made.body["change_id"] and made.headers["ETag"] == f'"{made.body["serial"]}"'
    ns = await c.call("GET", "/api/v1/zones/new.example/rrsets/@/NS", token=t)
    assert ns.status == 200
    assert ns.body["records"] == ["ns1.zonehost.invalid.", "ns2.zonehost.invalid."]
    again = await c.call("POST", "/api/v1/zones", token=t, json_body={"name": "new.example"})
    assert again.status == 409 and again.code == "zone_exists"
    # Another client's domain and a domain in nobody's portfolio look the same.
    for name in ("rival.example", "nowhere.example"):
        refused = await c.call("POST", "/api/v1/zones", token=t, json_body={"name": name})
        assert refused.status == 404 and refused.code == "domain_not_found", name
    bad = await c.call("POST", "/api/v1/zones", token=t, json_body={"name": "../x"})
    assert bad.status == 400
    held = await c.call("POST", "/api/v1/zones", token=t, json_body={"name": "held.example"})
    assert held.status == 201 and held.body["status"] == "suspended"
    async with db.read() as session:
        actions = (await session.execute(select(AuditEntry.action).where(
            AuditEntry.object_name == "new.example."))).scalars().all()
    assert "zone.create" in actions
