"""Tables of the auth service (filled by its own migration)."""
