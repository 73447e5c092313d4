"""Transfer settings: the ACL, NOTIFY targets and keys, as zonehost hands them down."""

from __future__ import annotations

import dns.name
import pytest

from nameserver.acl import AclError, TransferAcl
from nameserver.notify import TargetError, parse_target
from nameserver.xfr import TransferConfig, TransferConfigError

SECRET = "K2tf3TRjvQkVCmJF3/Z9vA=="


@pytest.mark.parametrize(
    ("networks", "client", "allowed"),
    [
        (["127.0.0.0/8", "::1"], "127.0.0.1", True),
        (["127.0.0.0/8", "::1"], "127.9.8.7", True),
        (["127.0.0.0/8", "::1"], "::1", True),
        (["127.0.0.0/8", "::1"], "::2", False),
        (["127.0.0.0/8", "::1"], "192.0.2.1", False),
        (["192.0.2.0/24"], "::ffff:192.0.2.9", True),  # IPv4-mapped
        (["2001:db8::/32"], "2001:db8:1::5%eth0", True),  # scoped
        (["192.0.2.1"], "192.0.2.1", True),
        (["192.0.2.1"], "192.0.2.2", False),
        ([], "127.0.0.1", False),  # closed by default
        (["127.0.0.0/8"], "not an address", False),
    ],
)
def test_acl(networks: list[str], client: str, allowed: bool) -> None:
    assert TransferAcl.from_texts(networks).allows(client) is allowed


@pytest.mark.parametrize("text", ["127.0.0.0/33", "example.com", "10.0.0.0/8/8"])
def test_acl_rejects_bad_networks(text: str) -> None:
    with pytest.raises(AclError):
        TransferAcl.from_texts([text])


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("127.0.0.1:5399", ("127.0.0.1", 5399)),
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("[::1]:5399", ("::1", 5399)),
        ("[::1]", ("::1", 53)),
        ("2001:db8::1", ("2001:db8::1", 53)),
    ],
)
def test_notify_targets(text: str, target: tuple[str, int]) -> None:
    assert parse_target(text) == target


@pytest.mark.parametrize("text", ["ns1.example.net:53", "127.0.0.1:0", "127.0.0.1:x", "[::1]x"])
def test_bad_notify_targets(text: str) -> None:
    with pytest.raises(TargetError):
        parse_target(text)


def test_config_from_texts() -> None:
    config = TransferConfig.from_texts(
        allow_transfer=["127.0.0.0/8", " ::1 "],
        tsig_keys=[f"xfr:hmac-sha256:{SECRET}"],
        notify=["127.0.0.1:5399", "[::1]:5399"],
        notify_tsig_key="xfr",
    )
    assert config.acl.allows("::1")
    assert config.notify == (("127.0.0.1", 5399), ("::1", 5399))
    assert config.notify_key is not None
    assert config.notify_key.name == dns.name.from_text("xfr.")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"allow_transfer": ["nonsense"]},
        {"tsig_keys": ["xfr:hmac-sha256"]},
        {"notify": ["localhost:53"]},
        {"notify_tsig_key": "missing"},
    ],
)
def test_config_errors_name_the_setting(kwargs: dict[str, object]) -> None:
    with pytest.raises(TransferConfigError):
        TransferConfig.from_texts(**kwargs)  # type: ignore[arg-type]
