"""Tables of the nameserver service (filled by its own migration)."""
