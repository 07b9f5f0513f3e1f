class EmulateError(Exception):
    """A problem the user can fix. The CLI prints it on one line and exits with code 2."""


class ReplayMiss(EmulateError):
    """A request had no recorded answer in the replay cassette."""


class TooManyErrors(EmulateError):
    """Too many of a run's cases ended in API errors for its numbers to be trusted.
    The CLI exits with code 3; `result` (a RunResult) holds what was done."""

    exit_code = 3

    def __init__(self, message: str, result: object = None):
        super().__init__(message)
        self.result = result
