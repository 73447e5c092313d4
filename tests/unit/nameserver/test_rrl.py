"""Response rate limiting with a fake clock."""

from __future__ import annotations

from nameserver.rrl import Action, RateLimiter, RrlOptions, network_of


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limit_then_slip_every_second_response() -> None:
    clock = Clock()
    rrl = RateLimiter(RrlOptions(rate_per_s=3, slip=2), clock)
    actions = [rrl.decide("192.0.2.7", "answer", b"www") for _ in range(9)]
    assert actions[:3] == [Action.SEND] * 3
    assert actions[3:] == [Action.DROP, Action.SLIP] * 3
    clock.now += 1
    assert rrl.decide("192.0.2.7", "answer", b"www") is Action.SEND


def test_buckets_by_network_kind_and_name() -> None:
    rrl = RateLimiter(RrlOptions(rate_per_s=1, slip=0), Clock())
    assert rrl.decide("192.0.2.7", "answer", b"www") is Action.SEND
    assert rrl.decide("192.0.2.200", "answer", b"www") is Action.DROP  # same /24
    assert rrl.decide("192.0.3.7", "answer", b"www") is Action.SEND  # other /24
    assert rrl.decide("192.0.2.7", "nxdomain", b"www") is Action.SEND
    assert rrl.decide("192.0.2.7", "answer", b"mail") is Action.SEND


def test_networks() -> None:
    options = RrlOptions()
    assert network_of("192.0.2.77", options) == bytes([192, 0, 2])
    assert network_of("2001:db8:1:2ff::1", options) == bytes.fromhex("20010db80001 02")
    assert network_of("2001:db8:1:2ff::1", RrlOptions(ipv6_prefix=60)) == bytes.fromhex(
        "20010db8000102f0"
    )
