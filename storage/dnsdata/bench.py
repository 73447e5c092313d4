"""Time masterfile.from_text() on a generated zone: python -m storage.dnsdata.bench [N].

The zone mixes the usual types (half A, AAAA, MX, TXT with two strings,
CNAME), one record per line, as hosting zones look.
"""

from __future__ import annotations

import sys
import time

from storage.dnsdata import masterfile
from storage.dnsdata.names import zone_origin


def generate(count: int) -> str:
    """A master file of example.com. with `count` records."""
    lines = [
        "$ORIGIN example.com.",
        "$TTL 3600",
        "@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300",
        "@ NS ns1",
        "@ NS ns2",
        "ns1 A 192.0.2.1",
        "ns2 A 192.0.2.2",
    ]
    i = 0
    while len(lines) - 2 < count:  # the two directives are not records
        kind = i % 10
        if kind < 5:
            lines.append(f"h{i} A 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}")
        elif kind < 7:
            lines.append(f"h{i} AAAA 2001:db8::{i >> 16:x}:{i & 0xFFFF:x}")
        elif kind == 7:
            lines.append(f"h{i} 300 IN MX 10 mail{i}.example.net.")
        elif kind == 8:
            lines.append(f'h{i} TXT "v=spf1 include:_spf.example.net ~all" "n={i}"')
        else:
            lines.append(f"c{i} CNAME h{i - 1}")
        i += 1
    return "\n".join(lines) + "\n"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    text = generate(count)
    origin = zone_origin("example.com")
    wall, cpu = time.perf_counter(), time.process_time()
    content = masterfile.from_text(text, origin)
    print(
        f"{count} records, {len(content.rrsets)} RRsets: from_text "
        f"{time.perf_counter() - wall:.2f} s wall, {time.process_time() - cpu:.2f} s CPU"
    )
    wall, cpu = time.perf_counter(), time.process_time()
    out = masterfile.to_text(content)
    print(
        f"to_text {time.perf_counter() - wall:.2f} s wall, "
        f"{time.process_time() - cpu:.2f} s CPU ({len(out)} characters)"
    )

if __name__ == "__main__":
    main()
