"""Per-client limits: simultaneous connections and a message rate (token bucket).

Kept in memory per process: each MX host enforces its own share, which is
what a sender hitting several MX hosts meets anyway.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Client:
    connections: int = 0
    tokens: float = 0.0
    stamp: float = field(default_factory=time.monotonic)


class ClientLimits:
    def __init__(self, max_connections: int, per_client: int, messages_per_minute: int) -> None:
        self.max_connections = max_connections
        self.per_client = per_client
        self.rate_per_s = messages_per_minute / 60.0
        self.burst = float(max(1, messages_per_minute))
        self.total = 0
        self._clients: dict[str, _Client] = {}

    def open(self, client: str) -> bool:
        """Count a new connection; False (and nothing counted) when over a limit."""
        state = self._clients.get(client)
        if self.total >= self.max_connections:
            return False
        if state is None:
            state = self._clients[client] = _Client(tokens=self.burst)
        if state.connections >= self.per_client:
            return False
        state.connections += 1
        self.total += 1
        return True

    def close(self, client: str) -> None:
        state = self._clients.get(client)
        if state is None or state.connections == 0:
            return
        state.connections -= 1
        self.total -= 1
        if state.connections == 0 and self._refill(state) >= self.burst:
            del self._clients[client]

    def _refill(self, state: _Client) -> float:
        now = time.monotonic()
        state.tokens = min(self.burst, state.tokens + (now - state.stamp) * self.rate_per_s)
        state.stamp = now
        return state.tokens

    def allow_message(self, client: str) -> bool:
        """Take one message from the client's budget."""
        state = self._clients.setdefault(client, _Client(tokens=self.burst))
        if self._refill(state) < 1.0:
            return False
        state.tokens -= 1.0
        return True
