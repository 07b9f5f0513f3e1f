class EmulateError(Exception):
    """A problem the user can fix. The CLI prints it on one line and exits with code 2."""


class ReplayMiss(EmulateError):
    """A request had no recorded answer in the replay cassette."""
