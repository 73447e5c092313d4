"""Tables of the mail service (filled by its own migration)."""
