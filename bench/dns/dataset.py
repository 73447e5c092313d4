"""The benchmark's data set: hosting-like customer zones, one big zone, and a
query file with the realistic mix, all generated from a seed.

Customer zones look like what a registrar hosts: out-of-zone NS at the
provider, apex and www A/AAAA, MX to an in-zone mail host (so answers carry
additional records), SPF TXT, a CNAME, a delegated child with in-bailiwick
glue, an SRV, and a wildcard in every fourth zone: 16 or 17 records each.
The big zone has 100,000 owner names (A, some AAAA, some CNAME).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TLDS = ("com", "net", "org", "de", "fr", "eu", "io")
WORDS = (
    "alpine", "bakery", "cargo", "dental", "energy", "florist", "garage", "harbor",
    "insight", "jewel", "kitchen", "lumen", "market", "nordic", "optic", "pixel",
)
PROVIDER_NS = ("ns1.zonehost-dns.net.", "ns2.zonehost-dns.net.")
BIG_ORIGIN = "big-hosting.net."
SERIAL = 2024010101

# The query mix of the Targets section, in percent.
MIX = {"address": 70, "mx_txt": 10, "nxdomain": 10, "cname": 5, "referral": 5}


@dataclass(frozen=True, slots=True)
class Dataset:
    root: Path
    customer_dir: Path  # the 1,000 customer zones, <origin>.zone each
    all_dir: Path  # customer zones and the big zone (for the reference servers)
    big_file: Path
    customers: tuple[str, ...]  # origins, absolute
    big_origin: str
    big_names: int
    query_file: Path  # the realistic mix over all zones, dnsperf format (saturation runs)
    latency_file: Path  # the same mix, another draw (fixed-rate runs: not cached by the first)
    profile_file: Path  # a third draw, for the profiler's run
    other_zones_query_file: Path  # the same mix without the big zone
    queries: int
    distinct_queries: int
    records: int  # in all zones, SOA included

    @property
    def origins(self) -> tuple[str, ...]:
        return (*self.customers, self.big_origin)


def customer_origin(i: int) -> str:
    return f"{WORDS[i % len(WORDS)]}-{i:04d}.{TLDS[i % len(TLDS)]}."


def _v4(i: int, host: int) -> str:
    return f"198.51.{(i >> 8) & 255}.{(i + host) & 255}"


def _v6(i: int, host: int) -> str:
    return f"2001:db8:{i:x}::{host:x}"


def customer_zone(i: int) -> tuple[str, int]:
    """Master file text of customer zone `i` and its record count."""
    origin = customer_origin(i)
    lines = [
        f"$ORIGIN {origin}",
        "$TTL 3600",
        f"@ IN SOA {PROVIDER_NS[0]} hostmaster.{origin} {SERIAL} 10800 3600 1209600 300",
        f"@ NS {PROVIDER_NS[0]}",
        f"@ NS {PROVIDER_NS[1]}",
        f"@ A {_v4(i, 1)}",
        f"@ AAAA {_v6(i, 1)}",
        f"www A {_v4(i, 2)}",
        f"www AAAA {_v6(i, 2)}",
        "@ MX 10 mail",
        f"mail A {_v4(i, 3)}",
        '@ TXT "v=spf1 mx include:_spf.zonehost-dns.net ~all"',
        "shop CNAME www",
        "sub 86400 NS ns1.sub",
        "sub 86400 NS ns2.sub",
        f"ns1.sub 86400 A {_v4(i, 4)}",
        f"ns2.sub 86400 A {_v4(i, 5)}",
        "_sip._tcp SRV 10 60 5060 www",
    ]
    if i % 4 == 0:
        lines.append(f"*.apps A {_v4(i, 6)}")
    return "\n".join(lines) + "\n", len(lines) - 2


def big_zone(names: int, variant: int = 0) -> tuple[str, int]:
    """The big zone: `names` owners below the apex; `variant` changes its
    serial and one address in ten (a wholesale replacement)."""
    origin = BIG_ORIGIN
    lines = [
        f"$ORIGIN {origin}",
        "$TTL 3600",
        f"@ IN SOA {PROVIDER_NS[0]} hostmaster.{origin} {SERIAL + variant} 10800 3600 1209600 300",
        f"@ NS {PROVIDER_NS[0]}",
        f"@ NS {PROVIDER_NS[1]}",
        "@ A 203.0.113.1",
    ]
    for n in range(names):
        if n % 20 == 19:
            lines.append(f"c{n} CNAME h{n - 1}")
            continue
        last = (n + (variant if n % 10 == 1 else 0)) & 255
        lines.append(f"h{n} A 10.{(n >> 16) & 255}.{(n >> 8) & 255}.{last}")
        if n % 10 == 0:
            lines.append(f"h{n} AAAA 2001:db8:b16::{n >> 16:x}:{n & 0xFFFF:x}")
    return "\n".join(lines) + "\n", len(lines) - 2


def _big_address_name(rng: random.Random, names: int) -> tuple[str, str]:
    n = rng.randrange(names)
    if n % 20 == 19:
        n -= 1
    if rng.random() < 0.3:
        n -= n % 10  # the names that have AAAA
        return f"h{n}.{BIG_ORIGIN}", "AAAA"
    return f"h{n}.{BIG_ORIGIN}", "A"


def _address(rng: random.Random, zone: str, i: int) -> tuple[str, str]:
    host = rng.choice(("", "", "www.", "www.", "mail."))
    if i % 4 == 0 and rng.random() < 0.1:
        return f"{rng.choice(('app', 'api', 'eu', 'us'))}{rng.randrange(50)}.apps.{zone}", "A"
    return host + zone, "A" if rng.random() < 0.65 else "AAAA"


def query_lines(count: int, customers: int, big_names: int, seed: int, with_big: bool) -> list[str]:
    rng = random.Random(seed)
    kinds = [k for k, share in MIX.items() for _ in range(share)]
    lines = []
    for _ in range(count):
        i = rng.randrange(customers)
        zone = customer_origin(i)
        kind = rng.choice(kinds)
        big = with_big and rng.random() < 0.25
        if kind == "address":
            name, qtype = _big_address_name(rng, big_names) if big else _address(rng, zone, i)
        elif kind == "mx_txt":
            name, qtype = zone, rng.choice(("MX", "TXT"))
        elif kind == "nxdomain":
            label = f"nx{rng.getrandbits(40):x}"
            name, qtype = f"{label}.{BIG_ORIGIN if big else zone}", "A"
        elif kind == "cname":
            if big:
                name, qtype = f"c{rng.randrange(big_names // 20) * 20 + 19}.{BIG_ORIGIN}", "A"
            else:
                name, qtype = f"shop.{zone}", "A"
        else:  # referral: a name at or below the delegated child
            name = rng.choice(("", "www.", "mail.", f"h{rng.randrange(100)}.")) + f"sub.{zone}"
            qtype = "A"
        lines.append(f"{name} {qtype}")
    return lines


def generate(
    root: Path,
    customers: int = 1000,
    big_names: int = 100_000,
    queries: int = 2_000_000,
    seed: int = 53,
    latency_queries: int = 1_000_000,
    log: Callable[[str], None] = print,
) -> Dataset:
    customer_dir = root / "customers"
    all_dir = root / "all"
    customer_dir.mkdir(parents=True)
    all_dir.mkdir()
    records = 0
    origins = []
    for i in range(customers):
        origin = customer_origin(i)
        text, count = customer_zone(i)
        records += count
        origins.append(origin)
        (customer_dir / f"{origin}zone").write_text(text)
        (all_dir / f"{origin}zone").write_text(text)
    text, count = big_zone(big_names)
    records += count
    big_file = root / f"{BIG_ORIGIN}zone"
    big_file.write_text(text)
    (all_dir / big_file.name).write_text(text)
    lines = query_lines(queries, customers, big_names, seed, with_big=True)
    query_file = root / "queries.txt"
    query_file.write_text("\n".join(lines) + "\n")
    files = {}
    for offset, name, count, with_big in (
        (1, "queries-other-zones.txt", max(queries // 4, 1000), False),
        (2, "queries-latency.txt", min(queries, latency_queries), True),
        (3, "queries-profile.txt", min(queries, latency_queries), True),
    ):
        files[name] = root / name
        files[name].write_text(
            "\n".join(query_lines(count, customers, big_names, seed + offset, with_big)) + "\n"
        )
    log(
        f"data set: {customers} customer zones + {BIG_ORIGIN} ({big_names} names),"
        f" {records} records; {queries} queries ({len(set(lines))} distinct) in {root}"
    )
    return Dataset(
        root=root,
        customer_dir=customer_dir,
        all_dir=all_dir,
        big_file=big_file,
        customers=tuple(origins),
        big_origin=BIG_ORIGIN,
        big_names=big_names,
        query_file=query_file,
        latency_file=files["queries-latency.txt"],
        profile_file=files["queries-profile.txt"],
        other_zones_query_file=files["queries-other-zones.txt"],
        queries=queries,
        distinct_queries=len(set(lines)),
        records=records,
    )


def write_big_variant(dataset: Dataset, variant: int) -> Path:
    """A modified copy of the big zone (new serial, one address in ten changed)."""
    text, _ = big_zone(dataset.big_names, variant)
    path = dataset.root / f"big-variant-{variant}.zone"
    path.write_text(text)
    return path
