"""The one exception type for user mistakes.

The CLI prints a `UserError` as a single line on stderr and exits with status 2; anything else is a
bug in ego4d-lta and keeps its traceback (exit status 1).
"""


class UserError(Exception):
    """Bad input from the user (a file, a flag, a dataset): say what and where in one line."""
