"""The shared store: models, sessions, migrations, change feed and DNS data rules."""
