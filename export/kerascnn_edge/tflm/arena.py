# Edge side of the export (export/): TensorFlow-free; the TensorFlow side that writes the files is kerascnn/export/.
"""The TFLM interpreter on the host, and the smallest tensor arena a model runs in.

Edge side: needs `tflite-micro` (its Python interpreter runs the reference kernels a board compiles) and numpy.

Each attempt of the search runs in a child process (`attempt`): below its true size some models make TFLM crash
instead of failing (a fine-tuned MobileNetV2 uint8 export: "Unable to allocate quantization->zero_point", then
SIGSEGV at 65,536 bytes), and a crash must not take the tool down. A crashed attempt counts as "does not fit".

TFLM allocates every tensor, scratch buffer and bookkeeping struct of a model from one caller-given byte array, the
arena, at load time; the model itself stays in flash. `smallest_arena` finds the least `arena_size` the model loads
and runs in by bisection: loading fails below it ("Failed to resize buffer. Requested: ..., missing: ...").

Example:
    >>> arena = smallest_arena(model, probe)         # bytes, e.g. 43,712 for the shipped VGG
    >>> interpreter = load(model, arena)             # runs; load(model, arena - 1) raises ArenaTooSmallError
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import pickle
import re
import signal
import tempfile

import numpy as np

LARGEST = 64 * 1024 * 1024  # the largest arena tried (no microcontroller has more SRAM)


class TFLMError(RuntimeError):
    """TFLM refused the model; the message is TFLM's own (e.g. "Didn't find op for builtin opcode 'X'")."""


class ArenaTooSmallError(TFLMError):
    """The arena is too small for the model."""


@contextlib.contextmanager
def captured_stderr():
    """TFLM's C++ code writes its errors and print_allocations() to file descriptor 2, not to sys.stderr: this
    sends fd 2 to a temporary file for the block and yields a list that then holds the text."""
    text: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text.append(sink.read().decode(errors="replace"))


def _message(stderr: str, error: Exception) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return "; ".join(dict.fromkeys(lines)) or str(error)


def load(tflite_model: bytes, arena_size: int):
    """A TFLM interpreter for the model with an arena of `arena_size` bytes.

    Raises:
        ArenaTooSmallError: the model does not fit in the arena.
        TFLMError: TFLM refuses the model otherwise (an op it lacks, a malformed model).
    """
    from tflite_micro.python.tflite_micro import runtime

    with captured_stderr() as stderr:
        try:
            return runtime.Interpreter.from_bytes(tflite_model, arena_size=int(arena_size))
        except (RuntimeError, ValueError) as error:
            failure = error
    message = _message(stderr[0], failure)
    if re.search(r"Failed to (resize buffer|allocate)", message):
        raise ArenaTooSmallError(message)
    raise TFLMError(message)


def invoke(interpreter, tensor: np.ndarray) -> np.ndarray:
    """The model's output for one input tensor (shape [1, H, W, C], the input's dtype).

    Raises:
        TFLMError: TFLM failed to run the model.
    """
    with captured_stderr() as stderr:
        try:
            interpreter.set_input(tensor, 0)
            interpreter.invoke()
            return interpreter.get_output(0).copy()
        except (RuntimeError, ValueError) as error:
            failure = error
    raise TFLMError(_message(stderr[0], failure))


def _load_and_run(tflite_model: bytes, arena_size: int, probe: np.ndarray) -> None:
    invoke(load(tflite_model, arena_size), probe)


def attempt(function, *args) -> tuple[str, str | None]:
    """Runs `function(*args)` in a forked child process: ("ok", None), ("too small", TFLM's message) for
    ArenaTooSmallError, ("error", the message) for another exception, or ("crashed", the signal's name) when the child
    died of a signal (TFLM's C++ code segfaults on some arenas that are too small).

    The child inherits the model and the probe (fork: nothing is pickled on the way in) and sends back one small
    pickled tuple through a pipe; it leaves with os._exit, so it flushes none of the parent's buffered output.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        faulthandler.disable()  # a crash is an answer here, not a Python traceback for the user's terminal
        try:
            function(*args)
            outcome = ("ok", None)
        except ArenaTooSmallError as error:
            outcome = ("too small", str(error))
        except BaseException as error:  # noqa: BLE001  (everything goes back to the parent, which decides)
            outcome = ("error", str(error) if isinstance(error, TFLMError) else f"{type(error).__name__}: {error}")
        with os.fdopen(write, "wb") as pipe:
            pickle.dump(outcome, pipe)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        sent = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "crashed", signal.Signals(os.WTERMSIG(status)).name
    return pickle.loads(sent) if sent else ("crashed", f"exit {os.waitstatus_to_exitcode(status)}")


def runs_in(tflite_model: bytes, arena_size: int, probe: np.ndarray) -> bool:
    """Whether the model loads in `arena_size` bytes and runs `probe` (kernels may allocate at their first run),
    tried in a child process: a crash is "does not fit".

    Raises:
        TFLMError: TFLM refuses the model for another reason than the arena.
    """
    status, message = attempt(_load_and_run, tflite_model, arena_size, probe)
    if status == "error":
        raise TFLMError(message)
    return status == "ok"


def smallest_arena(tflite_model: bytes, probe: np.ndarray, largest: int = LARGEST) -> int:
    """The least arena size in bytes in which the model loads and runs `probe`, by bisection (about 26 attempts,
    each in a child process: a crash counts as "does not fit").

    Assumes that an arena that works keeps working when made larger (TFLM plans the same allocations in any arena
    large enough for them).

    Raises:
        TFLMError: the model does not run in TFLM at all (the message names why, e.g. a missing op, or the crash),
            or not even in `largest` bytes.
    """
    status, message = attempt(_load_and_run, tflite_model, largest, probe)  # an op TFLM lacks fails here
    if status == "error":
        raise TFLMError(message)
    if status == "too small":
        raise TFLMError(f"the model does not fit in an arena of {largest:,} bytes ({message})")
    if status == "crashed":
        raise TFLMError(f"TFLM crashed ({message}) running the model in an arena of {largest:,} bytes")
    fails, works = 0, largest
    while works - fails > 1:
        middle = (fails + works) // 2
        if runs_in(tflite_model, middle, probe):
            works = middle
        else:
            fails = middle
    return works


def allocations(interpreter) -> dict[str, int]:
    """The arena's use after a run, from TFLM's RecordingMicroAllocator: {"total": bytes, "head": ..., "tail": ...}
    (head: the planned tensors, reused between ops; tail: what persists, node structs and kernel buffers)."""
    with captured_stderr() as stderr:
        interpreter.print_allocations()
    found = re.findall(r"Arena allocation (\w+) (\d+) bytes", stderr[0])
    return {name: int(value) for name, value in found}
