"""What the two command lines (`python -m kerascnn.train`, `python -m kerascnn.export`) share: how an error the
user can act on ends the program.

Exit codes: 0 done; 2 a user error (a flag, a file, the data, --out, the cluster, a run that diverged), printed as
one line `error: <what is wrong and how to fix it>` on stderr; anything else is a bug in kerascnn and keeps its
traceback (Python's exit code 1). argparse's own flag errors exit 2 as well.
"""

from __future__ import annotations

import os
import sys

USER_ERROR = 2
# the exceptions kerascnn raises for bad input, each with a message that names the problem and the fix:
# ValueError (flags, config files, data, cluster settings, checkpoints), OSError (a file or folder: missing,
# unreadable, not writable, a full disk), RuntimeError (a dataset that cannot be loaded, a run that cannot go
# on), ImportError (an optional package that is not installed)
USER_ERRORS = (ValueError, OSError, RuntimeError, ImportError)


def one_line(error: BaseException) -> str:
    """The error's message on one line; an OSError from the system also names its file, and a setting's error
    (`kerascnn.settings.SettingError`) names each setting by its flag, where the library names its argument."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    elif hasattr(error, "in_flags"):
        text = error.in_flags()
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


INTERRUPTED = 130  # the shell's code for a program ended by Ctrl-C (128 + SIGINT)


def interrupted(what_happened: str) -> int:
    """Prints `interrupted: <what was kept and how to go on>` (one line, no traceback) and returns 130."""
    print(f"\ninterrupted: {what_happened}", file=sys.stderr)
    return INTERRUPTED


# Lines of TensorFlow, absl, the TFLite converter and its interpreter that say nothing a user can act on: start-up
# (oneDNN, CPU features, no CUDA driver or GPU), the converter's INFO/WARNING log and its settings printout, the
# XNNPACK delegate. A C++ library writes them to file descriptor 2 itself, so sys.stderr cannot catch them.
NOISE = (
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    rb"[IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ",  # absl INFO and WARNING lines
    rb"E\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] (failed call to cuInit|oneDNN supports DT_INT64 only)",
    rb"To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags",
    rb"fully_quantize: \d+, inference_type: ",
    rb"INFO: Created TensorFlow Lite XNNPACK delegate for CPU",
)
# the subprocess that passes every other line of file descriptor 2 on: another process, so that nothing is lost
# when this one dies (a crash, os._exit), and free of this one's signals (Ctrl-C)
_FILTER = """import re, sys
noise = re.compile(b"|".join(b"(?:" + p.encode("latin-1") + b")" for p in sys.argv[1:]))
for line in sys.stdin.buffer:
    if not noise.match(line):
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
"""
VERBOSE_HELP = "show the log lines of TensorFlow and the TFLite converter as well (hidden by default)"


def add_verbose_flag(parser) -> None:
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)


def hide_library_logs(argv: list[str]) -> None:
    """Hides the log lines in NOISE for the rest of this process (and the children that share its stderr), unless
    `argv` holds --verbose: the command lines call it first, before TensorFlow is imported. The library's own
    errors, tracebacks and kerascnn's lines pass. Python's "Statistics for quantized inputs were expected" warning
    of the converter (its int8 input is set by the calibration) is ignored too.

    Not for library use: it replaces the process's file descriptor 2 (see Habits: no logging set-up on import).
    """
    import warnings

    options = argv[: argv.index("--")] if "--" in argv else argv
    if "--verbose" in options:
        return
    warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
    if os.name != "posix":
        return
    import atexit
    import subprocess

    read_end, write_end = os.pipe()
    try:
        child = subprocess.Popen(
            [sys.executable, "-I", "-c", _FILTER, *(p.decode("latin-1") for p in NOISE)],
            stdin=read_end,
            stdout=sys.stderr.fileno(),
            start_new_session=True,
        )
    except OSError:  # no filter, no loss: the lines stay
        os.close(write_end)
        return
    finally:
        os.close(read_end)
    sys.stderr.flush()
    original = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)

    def drain():
        """At exit: the filter passes the last lines on before the shell's prompt comes back."""
        sys.stderr.flush()
        os.dup2(original, 2)
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:  # a child of ours still holds the pipe: it ends with it
            pass

    atexit.register(drain)
