"""The one error type a command turns into a single line and a non-zero exit."""


class UserError(Exception):
    """Something the user can mend: a bad config, an unreadable path, a broker that is down.

    The message names the problem and the fix; the CLI prints it on one line, never a traceback.
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
