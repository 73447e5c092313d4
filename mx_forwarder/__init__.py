"""mx_forwarder package."""
