"""Security notifications, by e-mail, sent in the background."""

from __future__ import annotations

from collections.abc import Sequence

from zoneapi.keys import Context

_FOOTER = "\n\nIf this was not you, change your password and contact support at once.\n"


def new_address_login(ctx: Context, email: str, login: str, address: str) -> None:
    ctx.notifier.notify(email, "zonehost: login from a new address",
                        f"The account {login} logged in from {address}, an address not seen "
                        f"before.{_FOOTER}")


def factor_added(ctx: Context, email: str, login: str, factor: str) -> None:
    ctx.notifier.notify(email, "zonehost: second factor added",
                        f"A second factor ({factor}) was added to {login}.{_FOOTER}")


def factor_removed(ctx: Context, email: str, login: str, factor: str) -> None:
    ctx.notifier.notify(email, "zonehost: second factor removed",
                        f"The second factor {factor} was removed from {login}.{_FOOTER}")


def token_created(ctx: Context, email: str, login: str, name: str) -> None:
    ctx.notifier.notify(email, "zonehost: API token created",
                        f"An API token named {name!r} was created for {login}.{_FOOTER}")


def nameservers_changed(ctx: Context, recipients: Sequence[str], zone: str, actor: str,
                        names: list[str]) -> None:
    """To the user who made the change and to the account's primary address
    (a delegation change moves the whole domain: the owner must hear of it)."""
    shown = ", ".join(names) or "(none)"
    for email in _distinct(recipients):
        ctx.notifier.notify(email, f"zonehost: name servers of {zone} changed",
                            f"The name servers of {zone} were changed by {actor} to: {shown}."
                            f"{_FOOTER}")


def _distinct(addresses: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for address in addresses:
        if address and address.lower() not in seen:
            seen.add(address.lower())
            out.append(address)
    return out


def password_reset_link(ctx: Context, email: str, login: str, token: str) -> None:
    link = f"{ctx.config.public_url.rstrip('/')}/reset-password#token={token}"
    minutes = ctx.config.password_reset_ttl_s // 60
    ctx.notifier.notify(email, "zonehost: password reset",
                        f"To choose a new password for {login}, open within {minutes} minutes:"
                        f"\n\n{link}\n\nThe link works once. If you did not ask for it, "
                        "ignore this message.\n")


def password_changed(ctx: Context, email: str, login: str) -> None:
    ctx.notifier.notify(email, "zonehost: password changed",
                        f"The password of {login} was changed and its sessions were ended."
                        f"{_FOOTER}")
