"""At start, with sign_dkim or sign_arc on, the forwarder looks up its own
key record (<selector>._domainkey.<signing domain>, served here by
`zonehost nameserver`) and says when it does not hold the public key of
signing_key_file: a warning with the record to publish, and the gauge
zonehost_mx_signing_key_published 0 (1 when it matches). The check never
holds up the start: with a resolver that does not answer, mail is taken all
the same."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from mx_forwarder.service import ForwarderHandle, start_forwarder
from storage.db import Database
from tests.e2e.mx_support import (
    Nameserver,
    RawClient,
    config,
    import_zones,
    rsa_key,
    wait_until,
    zonehost_nameserver,
)
from tests.e2e.test_mx_authres import Silent

OURS, OUR_TXT = rsa_key()
_, OTHER_TXT = rsa_key()
# one selector per case: the gauge is labelled by domain and selector, and lives in the process
ZONES = {
    "fwd.test": f"good._domainkey 300 IN TXT {OUR_TXT}\n"
                f"stale._domainkey 300 IN TXT {OTHER_TXT}\n"
                'revoked._domainkey 300 IN TXT "v=DKIM1; k=rsa; p="\n'
                'ed._domainkey 300 IN TXT "v=DKIM1; k=ed25519; '
                'p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="\n',
}


@pytest.fixture
async def nameserver(db: Database, cli_env: dict[str, str],
                     tmp_path: Path) -> AsyncIterator[Nameserver]:
    await import_zones(cli_env, tmp_path, ZONES)
    async with zonehost_nameserver(cli_env, probe="fwd.test.") as server:
        yield server


def gauge(selector: str) -> float | None:
    return REGISTRY.get_sample_value("zonehost_mx_signing_key_published",
                                     {"domain": "fwd.test", "selector": selector})


async def start(db: Database, port: int, tmp_path: Path, selector: str,
                **overrides: object) -> ForwarderHandle:
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(OURS)
    settings: dict[str, object] = {
        "resolver": ("127.0.0.1", port), "dns_timeout_s": 2.0, "auth_results": True,
        "sign_dkim": True, "sign_arc": True, "signing_domain": "fwd.test",
        "signing_selector": selector, "signing_key_file": str(key_file),
    }
    settings.update(overrides)
    return await start_forwarder(config(**settings), db)


async def checked(selector: str) -> None:
    async def done() -> bool:
        return gauge(selector) is not None

    await wait_until(done)


async def test_published_key_is_found(db: Database, nameserver: Nameserver, tmp_path: Path,
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mx_forwarder.signing")
    handle = await start(db, nameserver.port, tmp_path, "good")
    try:
        await checked("good")
    finally:
        await handle.close()
    assert gauge("good") == 1
    assert "good._domainkey.fwd.test is the public key of" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(("selector", "says"), [
    ("missing", "no DKIM key at missing._domainkey.fwd.test"),
    ("revoked", "no DKIM key at revoked._domainkey.fwd.test"),
    ("stale", "another DKIM key at stale._domainkey.fwd.test"),
    ("ed", "another DKIM key at ed._domainkey.fwd.test"),
])
async def test_missing_or_different_key_is_reported(
        db: Database, nameserver: Nameserver, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        selector: str, says: str) -> None:
    handle = await start(db, nameserver.port, tmp_path, selector, sign_arc=False)
    try:
        await checked(selector)
    finally:
        await handle.close()
    assert gauge(selector) == 0
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert says in warning and "receivers will fail every signature" in warning
    # the record to publish, in strings a master file takes
    assert "".join(re.findall(r'"([^"]{1,255})"', warning)) == "".join(OUR_TXT.split('"')[1::2])


async def test_check_does_not_hold_up_the_start(db: Database, tmp_path: Path) -> None:
    silent = Silent()
    try:
        handle = await start(db, silent.port, tmp_path, "unanswered", run_delivery=False)
        try:
            assert handle.port is not None
            client = await RawClient.connect(handle.port)
            assert (await client.cmd(b"EHLO a.test\r\n")).startswith("250")
            assert (await client.cmd(b"MAIL FROM:<>\r\n")).startswith("250")
            await client.close()

            async def asked() -> bool:
                return silent.received() > 0

            await wait_until(asked)  # the lookup went out ...
            assert gauge("unanswered") is None  # ... and nothing is claimed before an answer
        finally:
            await handle.close()
    finally:
        silent.sock.close()
