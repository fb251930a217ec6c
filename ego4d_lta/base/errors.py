"""The one exception type for user mistakes.

The CLI prints a `UserError` as a single line on stderr and exits with status 2; anything else is a
bug in ego4d-lta and keeps its traceback (exit status 1).
"""

import errno


class UserError(Exception):
    """Bad input from the user (a file, a flag, a dataset): say what and where in one line."""


ENVIRONMENT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ENOSPC",
        "EDQUOT",
        "EFBIG",
        "EACCES",
        "EPERM",
        "EROFS",
        "ENOTDIR",
        "EISDIR",
        "EEXIST",
        "ENAMETOOLONG",
        "ELOOP",
    )
    if hasattr(errno, name)
)
"""OS errors that say something about the user's disk or paths (full, read-only, a file where a folder must be),
not about ego4d-lta: one line naming the path, exit 2, like any other user mistake."""
