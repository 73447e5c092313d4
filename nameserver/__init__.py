"""nameserver package."""
