"""A ``graphbp train`` run across processes (``--coordinator``): joining ``jax.distributed``,
the processes' agreement to start training, and standard output kept for the summary.

Every process runs the same job; only process 0 prints and writes. Anything that makes one
process stop before training is shared with the others (:class:`Start`), so no process waits
in a collective for one that is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

from graphbp.errors import BackendNotInstalledError, InputError, exc_text


def join(args: argparse.Namespace) -> InputError | None:
    """Join the ``jax.distributed`` run that ``--coordinator``, ``--num-processes`` and
    ``--process-id`` describe; first, before anything uses JAX. Waits up to ``--timeout``
    seconds for every process to join (past it, jax ends the process: SIGABRT).

    Returns:
        The error of a process that joined but cannot train (its backend is not jax), which
        it reports through :class:`Start` so the others stop at once, or None.

    Raises:
        InputError: jax is not installed, or the run cannot be joined.
    """
    from graphbp.registry import default_backend, get_backend

    try:
        get_backend("jax")
    except BackendNotInstalledError as exc:
        raise InputError(
            f"--coordinator trains across processes with jax.distributed, but {exc}"
        ) from None
    backend = args.backend or default_backend()
    refused = None
    if backend != "jax":  # joins all the same, so the others hear of it at once
        refused = InputError(
            "--coordinator trains across processes with jax.distributed, but the backend is "
            f"{backend or 'numpy'!r}; add --backend jax (or set GRAPHBP_BACKEND=jax)"
        )
    import jax

    print(
        f"graphbp train: process {args.process_id} waiting for {args.num_processes} processes "
        f"at {args.coordinator} (at most {args.timeout} s) ...",
        file=sys.stderr,
        flush=True,
    )
    try:
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
            initialization_timeout=args.timeout,
        )
    except Exception as exc:  # jax raises RuntimeError and XLA's own errors
        raise InputError(
            f"--coordinator {args.coordinator}: process {args.process_id} of "
            f"{args.num_processes} could not join the run ({exc_text(exc, 300)}); start every "
            "process with the same --coordinator and --num-processes and its own --process-id, "
            "process 0 on the host the address names, at a port free there"
        ) from None
    return refused


def all_devices(args: argparse.Namespace) -> int:
    """How many devices the processes have together: the mesh the run is compiled over.

    Raises:
        InputError: ``--devices`` asks for another number.
    """
    import jax

    count = jax.device_count()
    if args.devices is not None and args.devices != count:
        raise InputError(
            f"--devices {args.devices} with --coordinator: a run across processes splits each "
            f"batch across every device of every process ({count} here); drop --devices"
        )
    return count


class Start:
    """The processes' agreement to start training: each calls :meth:`settle` once, ready or
    failed, before the first collective; one that failed stops them all.

    Args:
        spread: whether this is a run across processes (else settling does nothing).
        count: the number of processes this one was told (``--num-processes``), compared.
    """

    def __init__(self, spread: bool, count: int = 1) -> None:
        self.pending = spread
        self.count = count

    def settle(self, failed: bool) -> None:
        """Tell every process whether this one is ready (a collective, once; later calls do
        nothing).

        Raises:
            InputError: this process is ready but another one failed (its own output says why).
        """
        if not self.pending:
            return
        self.pending = False
        import numpy as np

        from graphbp.registry import get_backend

        if failed:  # this process prints nothing more on standard output
            stdout_to_stderr_from_now()
        with stdout_to_stderr():  # the first collective: gloo connects
            gathered = get_backend("jax").gather_hosts(np.array([int(failed), self.count]))
        flags = gathered[:, 0]
        others = [p for p, f in enumerate(flags.tolist()) if f]
        counts = gathered[:, 1].tolist()
        other = next((p for p, n in enumerate(counts) if n != counts[0]), None)
        if not others and other is not None:
            raise InputError(
                f"process {other} of {len(counts)} was given --num-processes {counts[other]}, "
                f"process 0 --num-processes {counts[0]}; give every process the same number"
            )
        if others and not failed:
            raise InputError(
                f"process {others[0]} of {len(flags)} stopped before training (its own output "
                "says why), so every process stops; fix it and start them all again"
            )


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Standard output (the file descriptor) sent to standard error meanwhile: gloo, JAX's CPU
    collectives, prints a line to standard output per connection it makes, which would mix
    with the summary process 0 prints (and make the other processes print)."""
    sys.stdout.flush()
    flush_c_stdio()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        flush_c_stdio()  # gloo's lines wait in C's buffer when standard output is a pipe
        os.dup2(saved, 1)
        os.close(saved)


def stdout_to_stderr_from_now() -> None:
    """Standard output (the file descriptor) sent to standard error for the rest of the
    process: one that prints nothing (not process 0, or one that stops), where gloo's threads
    may still print as its connections complete."""
    sys.stdout.flush()
    flush_c_stdio()
    os.dup2(2, 1)


def flush_c_stdio() -> None:
    """Write out what C's stdio (which C++'s std::cout writes through) holds in its buffers."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError, TypeError):  # no C library to ask
        ctypes.CDLL(None).fflush(None)
