"""Process-level settings for the entry points (no jax import here: some must precede it)."""

import ctypes
import ctypes.util
import importlib.metadata
import logging
import os
import sys
import warnings

from inception_flax import storage

# XLA's CPU backend (jax 0.10) hands convolutions to YNNPACK by default, which is slower than
# PyTorch eager on Inception's shapes (1x1, 3x3, 1x7, 7x1, stride-2 VALID). This flag makes it emit
# plain convolutions (Eigen over oneDNN sgemm) instead, which are faster on those shapes
# (measurements with processor and date: docs/performance.md). Set only where jax runs on the CPU.
FAST_CPU_CONV_FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"


def use_fast_cpu_convolutions() -> None:
    """Appends the CPU convolution flag to XLA_FLAGS (keeping the caller's flags) when jax will run on
    the CPU; call before importing jax.

    jax is not imported yet, so "the CPU" means: no accelerator plugin is installed (jax's CUDA or
    ROCm plugins, libtpu) and JAX_PLATFORMS, if set, names the CPU. Elsewhere XLA_FLAGS is left
    alone: a GPU build may abort on a flag it does not know.
    """
    if not _cpu_backend_expected():
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if FAST_CPU_CONV_FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {FAST_CPU_CONV_FLAG}".strip()


_ACCELERATOR_DISTRIBUTIONS = ("jax-cuda", "jax-rocm", "libtpu")  # name prefixes of jax's accelerator plugins


def check_checkout(script: str) -> None:
    """Exits naming the fix when `script` belongs to a checkout whose package Python does not import.

    `pip install -e .` points every interpreter of its virtualenv at the checkout it ran in, so a
    script started from a second checkout (a study's `git worktree` at a fixed commit) would run
    the first checkout's code, edits included, while the run looks pinned."""
    import inception_flax

    root = os.path.dirname(os.path.dirname(os.path.realpath(script)))
    own = os.path.join(root, "inception_flax")
    used = os.path.dirname(os.path.realpath(inception_flax.__file__))
    if os.path.isdir(own) and os.path.realpath(own) != used:
        raise SystemExit(
            f"error: {script} is in the checkout {root}, but Python imports inception_flax from {used}, "
            f"so the run would use that code. Run it as PYTHONPATH={root} python {script} ..., or "
            f"pip install -e {root} (nothing was started)."
        )


def _cpu_backend_expected() -> bool:
    platforms = os.environ.get("JAX_PLATFORMS", "").lower()
    if platforms:
        return platforms.split(",")[0].strip() == "cpu"
    names = (str(d.metadata["Name"] or "").lower().replace("_", "-") for d in importlib.metadata.distributions())
    return not any(name.startswith(_ACCELERATOR_DISTRIBUTIONS) for name in names)


def release_freed_memory() -> bool:
    """Hands the heap memory the process has freed back to the OS (glibc's `malloc_trim`).

    Compiling a full network's train step allocates and frees about a gigabyte in XLA's compiler;
    glibc keeps that memory mapped, so it adds to the peak of every later step (the measured peaks
    with and without: docs/performance.md). False (nothing done) where the C library has no
    `malloc_trim`.
    """
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        return False
    trim(ctypes.c_size_t(0))
    return True


class QuietLibraries(logging.Filter):
    """orbax and TFDS log every file operation at INFO; keep their warnings, drop the chatter.

    When a checkpoint write fails (a full disk), orbax logs the same error with its traceback from
    each of its threads, and asyncio one "exception was never retrieved" per abandoned array write
    (hundreds): the first traceback is kept, later ones lose theirs, asyncio's echoes are dropped.
    The training loop reports the failure itself, in one line.
    """

    def __init__(self):
        super().__init__()
        self._storage_traceback_shown = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "/asyncio/" in record.pathname and any(s in str(record.msg) for s in _ASYNCIO_ECHOES):
            return False
        noisy = any(part in record.pathname for part in ("/orbax/", "/tensorflow_datasets/"))
        if noisy and record.exc_info and storage.os_error_code(record.exc_info[1]) is not None:
            if self._storage_traceback_shown:
                record.exc_info, record.exc_text = None, None
            self._storage_traceback_shown = True
        return record.levelno >= logging.WARNING or not noisy


_ASYNCIO_ECHOES = ("exception was never retrieved", "Task was destroyed but it is pending")


def quiet_abandoned_writes() -> None:
    """Silences what orbax's abandoned writes print after a failed save, straight to stderr.

    After a write fails, TensorStore still completes the other writes of that save and calls back
    into the event loop orbax has closed: each callback prints `RuntimeError: Event loop is
    closed` with its traceback (about 500 of them for a small network), and at exit Python reports
    each unfinished write coroutine. Only those are dropped; every other error prints as before.
    """
    # The unfinished writes are reported as a RuntimeWarning (not through the unraisable hook)
    # when the final garbage collection frees them, after the error line: a user would read that
    # warning as the reason the job stopped. Only orbax's own write coroutine is silenced.
    warnings.filterwarnings(
        "ignore",
        message=r"coroutine 'async_serialize_from_host\.<locals>\.write_fragment' was never awaited",
        category=RuntimeWarning,
    )
    previous_except, previous_unraisable = sys.excepthook, sys.unraisablehook

    def excepthook(kind, value, tb):
        if not _closed_loop(value):  # an uncaught storage error of the program itself still prints
            previous_except(kind, value, tb)

    def unraisablehook(unraisable):
        error = unraisable.exc_value
        shutting_down = isinstance(error, ImportError) and "Python is likely shutting down" in str(error)
        if not (_closed_loop(error) or shutting_down or storage.os_error_code(error) is not None):
            previous_unraisable(unraisable)

    sys.excepthook, sys.unraisablehook = excepthook, unraisablehook


def _closed_loop(error: BaseException | None) -> bool:
    return isinstance(error, RuntimeError) and str(error) == "Event loop is closed"
