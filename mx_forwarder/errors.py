"""The forwarder's errors: one base class, small subclasses."""

from __future__ import annotations


class ForwarderError(Exception):
    """The mail forwarder failed."""


class SrsError(ForwarderError):
    """Not a valid SRS address of ours (bad form, bad hash or too old)."""


class QueueError(ForwarderError):
    """The queue cannot take or find a message."""
