"""Per-client connection and message limits."""

from __future__ import annotations

from mx_forwarder.limits import ClientLimits


def test_connections_per_client_and_total() -> None:
    limits = ClientLimits(max_connections=3, per_client=2, messages_per_minute=60)
    assert limits.open("a") and limits.open("a")
    assert not limits.open("a")
    assert limits.open("b")
    assert not limits.open("c")  # total reached
    limits.close("a")
    assert limits.open("c")


def test_message_rate() -> None:
    limits = ClientLimits(max_connections=10, per_client=10, messages_per_minute=3)
    assert [limits.allow_message("a") for _ in range(4)] == [True, True, True, False]
    assert limits.allow_message("b")
