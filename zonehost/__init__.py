"""zonehost: the composition root (configuration, command line, `serve`)."""
