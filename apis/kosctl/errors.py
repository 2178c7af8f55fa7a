"""The CLI's expected-failure exception: printed as one line, exit code non-zero."""


class CLIError(Exception):
    """An expected failure: ``kosctl`` prints ``error: <message>`` and exits with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code
