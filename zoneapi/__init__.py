"""zoneapi package."""
