"""Prepared replies, keyed by the query's bytes after its ID.

A reply depends only on what follows the ID (flags, question, EDNS), so the
reply to a repeated query is `query[:2] + tail`. Entries live in two
generations: when the young one is full it becomes the old one, and a hit in
the old one moves the entry back, which keeps the busy entries at the cost
of one more dict lookup on a miss.

Resolvers that randomise the case of query names (0x20) would miss on every
variant; entries are therefore stored under the query with its name
lower-cased, and a query that misses is looked up once more that way, its
own spelling then copied into the reply's question. Names in the reply that
point into the question follow it; nothing else in a reply depends on case.
"""

from __future__ import annotations

from typing import Generic, TypeVar

# An entry is a tuple whose first item is the reply without its ID.
E = TypeVar("E", bound=tuple[bytes, object, object, object, object])


class ReplyCache(Generic[E]):
    def __init__(self, max_entries: int) -> None:
        self._half = max(1, max_entries // 2)
        self.enabled = max_entries > 0
        self.young: dict[bytes, E] = {}  # read directly by the hot path: exact hits
        self._old: dict[bytes, E] = {}

    def __len__(self) -> int:
        return len(self.young) + len(self._old)

    def clear(self) -> None:
        self.young.clear()
        self._old.clear()

    def get(self, data: bytes) -> E | None:
        entry = self.young.get(data[2:])
        return entry if entry is not None else self.recall(data)

    def recall(self, data: bytes) -> E | None:
        """`get` for a query already looked up in `young` (the hot path does
        that itself): the old generation, then the query's name case-folded."""
        key = data[2:]
        entry = self._old.get(key)
        if entry is not None:
            self.young[key] = entry
            return entry
        # The question name ends at its root label. A zero octet inside a label
        # only makes this fold a prefix of the name, which still matches only
        # queries that are the same but for case (the tail is compared as is).
        end = data.find(0, 12) + 1
        name = data[12:end]
        folded = name.lower()
        if folded == name or not end:
            return None
        fkey = data[2:12] + folded + data[end:]
        entry = self.young.get(fkey) or self._old.get(fkey)
        if entry is None:
            return None
        tail = entry[0]
        return (tail[:10] + name + tail[end - 2 :], *entry[1:])  # type: ignore[return-value]

    def put(self, data: bytes, qname_end: int, entry: E) -> None:
        """Remember the reply to `data`, whose question name ends at `qname_end`."""
        if not self.enabled:
            return
        young = self.young
        if len(young) >= self._half:
            self._old = young
            young = self.young = {}
        name = data[12:qname_end]
        folded = name.lower()
        if folded == name:
            young[data[2:]] = entry
            return
        tail = entry[0]
        young[data[2:12] + folded + data[qname_end:]] = (  # type: ignore[assignment]
            tail[:10] + folded + tail[qname_end - 2 :], *entry[1:]
        )
