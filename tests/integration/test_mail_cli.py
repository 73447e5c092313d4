"""`zonehost mail ...` against a real store, through the real command line."""

from __future__ import annotations

import subprocess
import sys

from mx_forwarder.queue import NewMessage, insert_messages
from storage import aliases
from storage.db import Database
from storage.models.mail import MessageKind
from tests.conftest import REPO_ROOT
from tests.e2e.mx_support import add_alias, add_zone, queue_counts


def zh(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zonehost", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


async def test_alias_commands(db: Database, cli_env: dict[str, str]) -> None:
    await add_zone(db, "hosted.test")
    out = zh(cli_env, "mail", "alias", "add", "Contact@hosted.test", "me@dest.test",
             "you@dest.test", "--verified")
    assert out.returncode == 0, out.stderr
    assert "contact@hosted.test -> me@dest.test (verified), you@dest.test (verified)" in out.stdout
    out = zh(cli_env, "mail", "alias", "add", "sales@hosted.test", "new@dest.test")
    assert "new@dest.test (pending)" in out.stdout
    out = zh(cli_env, "mail", "alias", "list", "hosted.test")
    assert out.stdout.splitlines() == [
        "contact@hosted.test -> me@dest.test (verified), you@dest.test (verified)",
        "sales@hosted.test -> new@dest.test (pending)",
    ]
    out = zh(cli_env, "mail", "alias", "add", "x@other.test", "me@dest.test")
    assert out.returncode == 1 and "not hosted" in out.stderr
    out = zh(cli_env, "mail", "alias", "remove", "contact@hosted.test", "you@dest.test")
    assert out.returncode == 0
    out = zh(cli_env, "mail", "alias", "remove", "nobody@hosted.test")
    assert out.returncode == 1 and "does not exist" in out.stderr
    out = zh(cli_env, "mail", "alias", "list")
    assert out.stdout.splitlines() == [
        "contact@hosted.test -> me@dest.test (verified)",
        "sales@hosted.test -> new@dest.test (pending)",
    ]


async def test_quota_and_pack(db: Database, cli_env: dict[str, str]) -> None:
    await add_zone(db, "hosted.test")
    for i in range(5):
        await add_alias(db, f"a{i}@hosted.test", "t@dest.test")
    out = zh(cli_env, "mail", "alias", "add", "a5@hosted.test", "t@dest.test")
    assert out.returncode == 1 and "5 aliases" in out.stderr
    out = zh(cli_env, "mail", "pack", "hosted.test", "on")
    assert out.returncode == 0 and "5/50 aliases" in out.stdout
    assert zh(cli_env, "mail", "alias", "add", "a5@hosted.test", "t@dest.test").returncode == 0


async def test_aliases_sensitive(db: Database, cli_env: dict[str, str]) -> None:
    await add_zone(db, "hosted.test")
    out = zh(cli_env, "mail", "sensitive", "hosted.test", "on")
    assert out.returncode == 0 and "alias changes sensitive on" in out.stdout
    async with db.read() as session:
        info = await aliases.get_mail_service(session, "hosted.test")
    assert info is not None and info.aliases_sensitive and info.enabled
    out = zh(cli_env, "mail", "sensitive", "hosted.test", "off")
    assert out.returncode == 0 and "alias changes sensitive off" in out.stdout
    async with db.read() as session:
        info = await aliases.get_mail_service(session, "hosted.test")
    assert info is not None and not info.aliases_sensitive
    out = zh(cli_env, "mail", "sensitive", "nothosted.test", "on")
    assert out.returncode == 1 and out.stderr


async def test_queue_retry_drop(db: Database, cli_env: dict[str, str]) -> None:
    async with db.write() as session:
        ids = await insert_messages(session, [
            NewMessage(MessageKind.FORWARD, "SRS0=x@fwd.test", "alice@sender.test",
                       b"Subject: q\r\n\r\nq\r\n", (("a@hosted.test", "t@dest.test"),)),
            NewMessage(MessageKind.FORWARD, "", "", b"Subject: r\r\n\r\nr\r\n",
                       (("a@hosted.test", "u@dest.test"),)),
        ], None, 0)
    out = zh(cli_env, "mail", "queue")
    assert out.returncode == 0 and "2 deliveries waiting" in out.stdout
    assert f"{ids[0]}\tqueued\t0\t" in out.stdout and "a@hosted.test -> t@dest.test" in out.stdout
    assert zh(cli_env, "mail", "retry", str(ids[0])).returncode == 0
    out = zh(cli_env, "mail", "drop", str(ids[1]))
    assert out.returncode == 0
    assert await queue_counts(db) == (1, 1)
    out = zh(cli_env, "mail", "drop", "999999")
    assert out.returncode == 1 and "no message" in out.stderr
