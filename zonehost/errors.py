"""The one error type the command line turns into a message and exit 1."""


class CommandError(Exception):
    """A command failed; the message says why."""
