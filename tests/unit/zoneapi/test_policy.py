"""Rights by role, deSEC-style token policies, allowlists: pure rules."""

from __future__ import annotations

import ipaddress

import pytest

from storage.models import AccountStatus, Right, UserRole
from zoneapi.policy import (
    ALL_RIGHTS,
    Operation,
    SensitiveKind,
    TokenPolicy,
    TokenScope,
    ZoneAccess,
    account_active,
    allowlisted,
    can_change_security,
    can_manage_accounts,
    can_write,
    cidr_problems,
    effective_rights,
    most_specific,
    parse_networks,
    right_for_rrset,
    token_may_see_zone,
    token_permits,
)

Z = "example.com."


def scope(*policies: TokenPolicy, manage: bool = False) -> TokenScope:
    return TokenScope(1, tuple(policies), manage, ())


@pytest.mark.parametrize(("role", "same", "granted", "expected"), [
    (UserRole.LEADER, True, [], ALL_RIGHTS),
    (UserRole.DELEGATE, True, [], ALL_RIGHTS),
    (UserRole.LEADER, False, [], frozenset()),
    (UserRole.USER, True, [], frozenset()),
    (UserRole.USER, True, [Right.EDIT_ZONE], frozenset({Right.EDIT_ZONE, Right.VIEW})),
    (UserRole.USER, False, [Right.EDIT_ZONE], frozenset()),
])
def test_effective_rights(role: UserRole, same: bool, granted: list[Right],
                          expected: frozenset[Right]) -> None:
    assert effective_rights(role, same, granted) == expected


def test_most_specific_policy_wins() -> None:
    default = TokenPolicy(None, None, None, write=False)
    domain = TokenPolicy(Z, None, None, write=True)
    txt = TokenPolicy(Z, "_acme-challenge", "TXT", write=True)
    sub = TokenPolicy(Z, "_acme-challenge", None, write=False)
    policies = [default, domain, txt, sub]
    assert most_specific(policies, Z, "_acme-challenge", "TXT") == txt
    assert most_specific(policies, Z, "_acme-challenge", "A") == sub
    assert most_specific(policies, Z, "www", "A") == domain
    assert most_specific(policies, "other.org.", "www", "A") == default
    assert most_specific([txt], Z, "www", "A") is None


@pytest.mark.parametrize(("subname", "rdtype", "write", "allowed"), [
    ("_acme-challenge", "TXT", True, True),
    ("_acme-challenge", "TXT", False, True),
    ("_acme-challenge", "A", False, False),
    ("www", "TXT", False, False),
])
def test_token_permits_acme_only(subname: str, rdtype: str, write: bool, allowed: bool) -> None:
    acme = scope(TokenPolicy(Z, "_acme-challenge", "TXT", write=True))
    decision = token_permits(acme, Z, subname, rdtype, write=write)
    assert decision.allowed is allowed
    assert decision.code == ("ok" if allowed else "token_scope")


def test_read_only_policy_refuses_writes() -> None:
    ro = scope(TokenPolicy(Z, None, None, write=False))
    assert token_permits(ro, Z, "www", "A", write=False).allowed
    assert not token_permits(ro, Z, "www", "A", write=True).allowed
    assert token_may_see_zone(ro, Z) and not token_may_see_zone(ro, "other.org.")
    assert token_permits(None, Z, "www", "A", write=True).allowed


def test_apex_ns_is_a_nameserver_change() -> None:
    assert right_for_rrset(Z, Z, "NS") == Right.EDIT_NAMESERVERS
    assert right_for_rrset(Z, "sub." + Z, "NS") == Right.EDIT_ZONE
    assert right_for_rrset(Z, Z, "A") == Right.EDIT_ZONE
    editor = ZoneAccess(1, Z, 1, None, frozenset({Right.VIEW, Right.EDIT_ZONE}))
    assert can_write(editor, None, Z, "", "A").allowed
    assert can_write(editor, None, Z, "", "NS").code == "right_missing"


def test_managers_and_tokens_for_settings() -> None:
    assert can_manage_accounts(UserRole.USER, None).code == "manager_only"
    assert can_manage_accounts(UserRole.DELEGATE, None).allowed
    assert can_manage_accounts(UserRole.LEADER, scope()).code == "token_scope"
    assert can_manage_accounts(UserRole.LEADER, scope(manage=True)).allowed
    narrow = scope(TokenPolicy(Z, None, None, True), manage=True)
    assert not can_change_security(narrow).allowed


def test_account_status() -> None:
    assert account_active(AccountStatus.ACTIVE).allowed
    assert account_active(AccountStatus.PENDING).code == "account_pending"
    assert account_active(AccountStatus.SUSPENDED).code == "account_inactive"


def test_allowlists() -> None:
    nets = parse_networks(["192.0.2.0/24", "2001:db8::/32", "garbage"])
    assert len(nets) == 2
    assert allowlisted(ipaddress.ip_address("192.0.2.7"), nets)
    assert allowlisted(ipaddress.ip_address("2001:db8::1"), nets)
    assert not allowlisted(ipaddress.ip_address("198.51.100.1"), nets)
    assert cidr_problems(["192.0.2.0/24", "192.0.2.1/24", "x"]) and len(
        cidr_problems(["192.0.2.1/24", "x"])) == 2


def test_operation_keys_round_trip() -> None:
    op = Operation(SensitiveKind.EDIT_NAMESERVERS, Z)
    assert op.key == "edit_nameservers:example.com."
    assert Operation.from_key(op.key) == op
    assert Operation.from_key("bogus:x") is None and Operation.from_key("nocolon") is None
