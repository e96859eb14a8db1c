"""What the two command lines (`python -m kerascnn.train`, `python -m kerascnn.export`) share: how an error the
user can act on ends the program.

Exit codes: 0 done; 2 a user error (a flag, a file, the data, --out, the cluster, a run that diverged), printed as
one line `error: <what is wrong and how to fix it>` on stderr; anything else is a bug in kerascnn and keeps its
traceback (Python's exit code 1). argparse's own flag errors exit 2 as well.
"""

from __future__ import annotations

import sys

USER_ERROR = 2
# the exceptions kerascnn raises for bad input, each with a message that names the problem and the fix:
# ValueError (flags, config files, data, cluster settings, checkpoints), OSError (a file or folder: missing,
# unreadable, not writable, a full disk), RuntimeError (a dataset that cannot be loaded, a run that cannot go
# on), ImportError (an optional package that is not installed)
USER_ERRORS = (ValueError, OSError, RuntimeError, ImportError)


def one_line(error: BaseException) -> str:
    """The error's message on one line; an OSError from the system also names its file."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def user_error(error: BaseException) -> int:
    """Prints `error: <message>` (one line) to stderr and returns the exit code of a user error (2).

    Example:
        >>> try:
        ...     run()
        ... except USER_ERRORS as error:
        ...     return user_error(error)
    """
    print(f"error: {one_line(error)}", file=sys.stderr)
    return USER_ERROR
