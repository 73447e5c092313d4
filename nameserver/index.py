"""The in-memory zones: immutable snapshots swapped by assignment.

A `Zone` maps every owner name (lower-case wire) to its node, a tuple of
`PreparedRRset`s; empty non-terminals are present as empty tuples, so the
closest encloser of a missing name is found by stripping labels until a key
matches. `ZoneIndex` maps origins to zones. `ZoneTable` holds the current
index and is what the feed follower updates: each of its methods builds a
new `Zone`/`ZoneIndex` aside and publishes it with one assignment, so a
query running on the event loop always sees one consistent snapshot and
never waits for a reload.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import dns.name

from nameserver.rrwire import (
    DNAME,
    NS,
    SOA,
    PreparedRRset,
    parent,
    prepare_rrset,
    soa_minimum,
)

log = logging.getLogger(__name__)


class StoredRRset(Protocol):
    """What the index reads from an RRset (storage.snapshot.StoredRRset has it)."""

    @property
    def name(self) -> str: ...  # absolute, lower case, trailing dot
    @property
    def rdtype(self) -> int: ...
    @property
    def ttl(self) -> int: ...
    @property
    def rdatas(self) -> tuple[bytes, ...]: ...  # uncompressed wire rdata


class ZoneSnapshot(Protocol):
    """What the index reads from a zone (storage.snapshot.ZoneSnapshot has it)."""

    @property
    def zone_id(self) -> int: ...
    @property
    def origin(self) -> str: ...
    @property
    def serial(self) -> int: ...
    @property
    def active(self) -> bool: ...
    @property
    def rrsets(self) -> Sequence[StoredRRset]: ...

Node = tuple[PreparedRRset, ...]
EMPTY: Node = ()
WILDCARD_LABEL = b"\x01*"
RETIRE_SLICE = 2_000  # names of a replaced zone freed per event-loop turn
RETIRE_WAIT_S = 0.05  # how soon to look again at a replaced zone still in use
RETIRE_PAUSE_S = 0.001  # between two slices


class ZoneIndexError(Exception):
    """Base class of index errors."""


class InvalidZone(ZoneIndexError):
    """The zone has no SOA at its apex."""


class ZoneNotFound(ZoneIndexError, KeyError):
    """No zone with that origin is loaded."""


def name_to_wire(text: str) -> bytes:
    """Lower-case wire form of an absolute name in presentation format."""
    if "\\" in text or text == ".":
        wire: bytes = dns.name.from_text(text).to_wire()  # type: ignore[assignment]
        return wire.lower()
    labels = text.lower().rstrip(".").split(".")
    out = bytearray()
    for label in labels:
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise InvalidZone(f"bad label in {text!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise InvalidZone(f"name too long: {text!r}")
    return bytes(out)


def is_subdomain(name: bytes, ancestor: bytes) -> bool:
    """True if `name` is `ancestor` or below it (label-aligned)."""
    if not name.endswith(ancestor):
        return False
    cut = len(name) - len(ancestor)
    pos = 0
    while pos < cut:
        pos += name[pos] + 1
    return pos == cut


def find_rrset(node: Node, rdtype: int) -> PreparedRRset | None:
    for rrset in node:
        if rrset.rdtype == rdtype:
            return rrset
    return None


class Lookup(NamedTuple):
    """Where a name falls in a zone (RFC 1034 4.3.2 step 3); a NamedTuple, as it
    is made for every query (see nameserver/message.py)."""

    node: Node | None  # the exact node, or None if the name does not exist
    closest_encloser: bytes
    cut: bytes | None  # highest delegation point at or above the name, if any
    dname: bytes | None  # highest DNAME owner strictly above the name, if any

    def wildcard_name(self) -> bytes:
        return WILDCARD_LABEL + self.closest_encloser


@dataclass(frozen=True, slots=True)
class Zone:
    zone_id: int
    origin: bytes  # lower-case wire
    origin_text: str
    serial: int
    active: bool
    nodes: dict[bytes, Node]  # never mutated once the zone is published
    cuts: frozenset[bytes]  # names below the apex that own NS
    dnames: frozenset[bytes]  # names that own a DNAME
    soa: PreparedRRset
    negative_soa: PreparedRRset  # TTL = min(SOA TTL, MINIMUM), RFC 2308 section 3
    record_count: int
    # Identifies this snapshot for reply caches without keeping it alive.
    token: object = field(default_factory=object, compare=False, repr=False)

    def lookup(self, name: bytes) -> Lookup:
        nodes = self.nodes
        node = nodes.get(name)
        encloser = name
        if node is None:
            encloser = parent(name)
            while encloser not in nodes:
                encloser = parent(encloser)
        if not self.cuts and not self.dnames:
            return Lookup(node, encloser, None, None)
        cut = dname = None
        origin_len = len(self.origin)
        walk = encloser
        while True:
            # Walking up: the last match seen is the highest, which wins.
            if walk in self.dnames and walk != name:
                dname, cut = walk, None
            if len(walk) == origin_len:
                break
            if walk in self.cuts:
                cut, dname = walk, None
            walk = parent(walk)
        return Lookup(node, encloser, cut, dname)

    def with_rrset_changes(
        self,
        serial: int,
        changed: Iterable[StoredRRset],
        deleted: Iterable[tuple[str, int]],
    ) -> Zone:
        """A new zone with some RRsets replaced or removed; this one is untouched."""
        nodes = dict(self.nodes)
        count = self.record_count
        touched: set[bytes] = set()
        for name_text, rdtype in deleted:
            name = name_to_wire(name_text)
            old = nodes.get(name)
            if old is None or not is_subdomain(name, self.origin):
                continue
            kept = tuple(rs for rs in old if rs.rdtype != rdtype)
            count -= sum(rs.count for rs in old if rs.rdtype == rdtype)
            nodes[name] = kept
            touched.add(name)
        for stored in changed:
            name = name_to_wire(stored.name)
            if not is_subdomain(name, self.origin):
                log.warning("zone=%s ignoring out-of-zone rrset %s", self.origin_text, stored.name)
                continue
            old = nodes.get(name, EMPTY)
            count -= sum(rs.count for rs in old if rs.rdtype == stored.rdtype)
            rest = tuple(rs for rs in old if rs.rdtype != stored.rdtype)
            if stored.rdatas:
                rrset = prepare_rrset(stored.rdtype, stored.ttl, stored.rdatas)
                nodes[name] = _ordered(rest + (rrset,))
                count += rrset.count
                _add_ancestors(nodes, name, self.origin)
            else:
                nodes[name] = rest
            touched.add(name)
        _prune_empty(nodes, touched, self.origin)
        cuts, dnames = set(self.cuts), set(self.dnames)
        for name in touched:
            node = nodes.get(name, EMPTY)
            _mark(cuts, name, name != self.origin and find_rrset(node, NS) is not None)
            _mark(dnames, name, find_rrset(node, DNAME) is not None)
        return _finish(
            self.zone_id, self.origin, self.origin_text, serial, self.active, nodes, count,
            frozenset(cuts), frozenset(dnames),
        )

    def with_active(self, active: bool) -> Zone:
        return _finish(
            self.zone_id, self.origin, self.origin_text, self.serial, active,
            self.nodes, self.record_count, self.cuts, self.dnames,
        )


def _mark(names: set[bytes], name: bytes, present: bool) -> None:
    if present:
        names.add(name)
    else:
        names.discard(name)


def _ordered(node: Node) -> Node:
    return tuple(sorted(node, key=lambda rs: rs.rdtype))


def _add_ancestors(nodes: dict[bytes, Node], name: bytes, origin: bytes) -> None:
    olen = len(origin)
    up = name
    while len(up) > olen:
        up = parent(up)
        if up in nodes:
            return
        nodes[up] = EMPTY


def _prune_empty(nodes: dict[bytes, Node], names: set[bytes], origin: bytes) -> None:
    """Drop nodes left empty that have no descendants (they are no longer ENTs)."""
    for name in names:
        while name != origin and nodes.get(name) == EMPTY:
            if any(k != name and is_subdomain(k, name) for k in nodes):
                break
            del nodes[name]
            name = parent(name)


def _finish(
    zone_id: int,
    origin: bytes,
    origin_text: str,
    serial: int,
    active: bool,
    nodes: dict[bytes, Node],
    record_count: int,
    cuts: frozenset[bytes],
    dnames: frozenset[bytes],
) -> Zone:
    apex = nodes.get(origin, EMPTY)
    soa = find_rrset(apex, SOA)
    if soa is None:
        raise InvalidZone(f"zone {origin_text} has no SOA at its apex")
    negative_ttl = min(soa.ttl, soa_minimum(soa))
    negative = soa if negative_ttl == soa.ttl else prepare_rrset(
        SOA, negative_ttl, (_soa_rdata(soa),)
    )
    return Zone(
        zone_id, origin, origin_text, serial, active, nodes, cuts, dnames, soa, negative,
        record_count,
    )


def _soa_rdata(soa: PreparedRRset) -> bytes:
    rec = soa.compressed[0]
    return rec.head + b"".join(rec.names) + rec.tail


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Keep the cyclic GC off while a zone is built, then freeze what was built.

    Building a 100,000-name zone allocates half a million objects; collections
    triggered meanwhile would walk them again and again (about 50 ms each,
    stalling every query), and after it the zone would be walked on every full
    collection. Zones hold no reference cycles, so reference counting alone
    frees them when they are replaced, frozen or not.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


class ZoneBuilder:
    """Builds one `Zone` from RRsets added one at a time, so that a loader can
    index rows as they stream from the store and never hold the whole zone
    twice (store values and index): 100,000 names' worth of temporaries
    would otherwise stay behind as freed but unreturnable heap."""

    __slots__ = (
        "_ttls",
        "active",
        "count",
        "cuts",
        "dnames",
        "nodes",
        "origin",
        "origin_text",
        "serial",
        "zone_id",
    )

    def __init__(self, zone_id: int, origin_text: str, serial: int, active: bool) -> None:
        self.zone_id = zone_id
        self.origin = name_to_wire(origin_text)
        self.origin_text = origin_text
        self.serial = serial
        self.active = active
        self.nodes: dict[bytes, Node] = {}
        self.count = 0
        self.cuts: set[bytes] = set()
        self.dnames: set[bytes] = set()
        self._ttls: dict[int, int] = {}

    def add(self, stored: StoredRRset) -> None:
        if not stored.rdatas:
            return
        origin = self.origin
        name = name_to_wire(stored.name)
        if not name.endswith(origin) or (
            len(name) > len(origin) and not is_subdomain(name, origin)
        ):
            log.warning("zone=%s ignoring out-of-zone rrset %s", self.origin_text, stored.name)
            return
        # One int object per distinct TTL, not one per RRset.
        ttl = self._ttls.setdefault(stored.ttl, stored.ttl)
        rrset = prepare_rrset(stored.rdtype, ttl, stored.rdatas)
        self.count += rrset.count
        if stored.rdtype == NS and name != origin:
            self.cuts.add(name)
        elif stored.rdtype == DNAME:
            self.dnames.add(name)
        nodes = self.nodes
        node = nodes.get(name)
        if node:
            nodes[name] = _ordered((*node, rrset))
        else:
            nodes[name] = (rrset,)
            if node is None:
                _add_ancestors(nodes, name, origin)

    def finish(self) -> Zone:
        """The zone; raises `InvalidZone` without an SOA at the apex."""
        return _finish(
            self.zone_id, self.origin, self.origin_text, self.serial, self.active, self.nodes,
            self.count, frozenset(self.cuts), frozenset(self.dnames),
        )


def build_zone(snapshot: ZoneSnapshot) -> Zone:
    """Index one zone snapshot (every RRset prepared for the wire)."""
    builder = ZoneBuilder(snapshot.zone_id, snapshot.origin, snapshot.serial, snapshot.active)
    with _collector_paused():
        for stored in snapshot.rrsets:
            builder.add(stored)
        return builder.finish()


@dataclass(frozen=True, slots=True)
class ZoneIndex:
    """Every loaded zone, by origin; replaced whole, never changed in place."""

    zones: dict[bytes, Zone]

    def find_zone(self, name: bytes, ds: bool = False) -> Zone | None:
        """The most specific zone containing `name`. With `ds`, a zone's apex
        belongs to the parent zone when that is loaded too (DS lives there)."""
        zones = self.zones
        pos = 0
        while True:
            zone = zones.get(name[pos:] if pos else name)
            if zone is not None:
                if ds and pos == 0 and name[0]:
                    parent_zone = self.find_zone(parent(name))
                    if parent_zone is not None:
                        return parent_zone
                return zone
            if not name[pos]:
                return None
            pos += name[pos] + 1

    def lookup(self, qname: bytes) -> tuple[Zone, Lookup] | None:
        zone = self.find_zone(qname)
        if zone is None:
            return None
        return zone, zone.lookup(qname)

    @property
    def record_count(self) -> int:
        return sum(z.record_count for z in self.zones.values())


class ZoneTable:
    """The published `ZoneIndex` and the only way to change it.

    Every method runs synchronously on the event loop between two queries,
    builds what changes aside, and publishes it in one assignment. `version`
    goes up on every change; `origins_version` only when a zone is added or
    removed, which can change the answer for names in other zones (a new
    child zone, a CNAME target now hosted), so reply caches drop everything
    then and otherwise only what a changed zone answered.
    """

    def __init__(self, zones: Iterable[Zone] = ()) -> None:
        self.index = ZoneIndex({z.origin: z for z in zones})
        self.version = 0
        self.origins_version = 0
        self._retired: list[Zone] = []  # replaced big zones, freed a slice at a time

    @classmethod
    def from_snapshots(cls, snapshots: Iterable[ZoneSnapshot]) -> ZoneTable:
        return cls(build_zone(s) for s in snapshots)

    def _publish(self, zones: dict[bytes, Zone], origins_changed: bool = False) -> None:
        if origins_changed:
            self.origins_version += 1
        self.index = ZoneIndex(zones)
        self.version += 1

    def get(self, origin: str) -> Zone | None:
        return self.index.zones.get(name_to_wire(origin))

    def replace_zone(self, snapshot: ZoneSnapshot) -> Zone:
        """Load (or reload) a whole zone from its snapshot."""
        return self.install_zone(build_zone(snapshot))

    def install_zone(self, zone: Zone) -> Zone:
        """Publish a zone built aside (e.g. by `build_zone` in a thread)."""
        zones = dict(self.index.zones)
        old = zones.get(zone.origin)
        zones[zone.origin] = zone
        self._publish(zones, origins_changed=old is None)
        self._retire(old)
        return zone

    def remove_zone(self, origin: str) -> bool:
        """Stop serving a zone; False if it was not loaded."""
        key = name_to_wire(origin)
        if key not in self.index.zones:
            return False
        zones = dict(self.index.zones)
        old = zones.pop(key)
        self._publish(zones, origins_changed=True)
        self._retire(old)
        return True

    def set_active(self, origin: str, active: bool) -> None:
        """Suspend (REFUSED) or resume a zone without reloading its data."""
        zone = self._find(origin)
        zones = dict(self.index.zones)
        zones[zone.origin] = zone.with_active(active)
        self._publish(zones)

    def apply_rrsets(
        self,
        origin: str,
        serial: int,
        changed: Sequence[StoredRRset],
        deleted: Sequence[tuple[str, int]],
    ) -> Zone:
        """Replace the RRsets in `changed` (an empty `rdatas` deletes) and delete
        the (name, rdtype) pairs in `deleted`, without rebuilding the zone.
        Raises `ZoneNotFound` if the zone is not loaded (load it whole instead)."""
        zone = self._find(origin).with_rrset_changes(serial, changed, deleted)
        zones = dict(self.index.zones)
        zones[zone.origin] = zone
        self._publish(zones)
        return zone

    def _retire(self, zone: Zone | None) -> None:
        """Free a replaced zone's names a slice at a time on the running loop:
        dropping 100,000 names at once stalls every query for 10-30 ms."""
        if zone is None or len(zone.nodes) < RETIRE_SLICE:
            return  # small: reference counting frees it at once, cheaply
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._retired.append(zone)
        if len(self._retired) == 1:
            loop.call_soon(self._reap)

    def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        retired = self._retired
        for i in range(len(retired)):
            zone = retired[i]
            # Only a zone nobody else holds may be taken apart; the references
            # here are the list's, the local's and the call's. Right after a
            # swap the responder still holds the old zones until its next
            # query, and an AXFR in progress holds its zone to the end: wait
            # for them, or the last of them would free 100,000 names at once.
            if sys.getrefcount(zone) > 3:
                continue
            nodes = zone.nodes
            for _ in range(min(RETIRE_SLICE, len(nodes))):
                nodes.popitem()
            if not nodes:
                del retired[i]
            del zone
            loop.call_later(RETIRE_PAUSE_S, self._reap)  # a pause: see feed.RELOAD_PAUSE_S
            return
        if retired:
            loop.call_later(RETIRE_WAIT_S, self._reap)

    def _find(self, origin: str) -> Zone:
        zone = self.index.zones.get(name_to_wire(origin))
        if zone is None:
            raise ZoneNotFound(origin)
        return zone
