"""Tables of the billing service (filled by its own migration)."""
