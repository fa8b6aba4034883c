"""Point-to-point messages between pipeline ranks (mpi4py), with a timeout on every wait.

A pipeline (:mod:`minidni.parallel.pipeline`) sends three kinds of message, each a pickled tuple
that starts with the step it belongs to:

- ``FORWARD``  rank r -> r+1: ``(t, h_{r+1}, labels)``, the output of rank r's module
  ``f_{r+1}`` at step t and the batch's labels (the last module and cDNI need them; they
  travel with the data);
- ``GRADIENT`` rank r+1 -> r: ``(t, delta)``, the gradient for that output:
  ``delta_hat_{r+1} = M_{r+2}(h_{r+1}, c)`` (DNI) or the true ``delta_{r+1}`` (locked);
- ``RESULT``   rank r -> 0 at the end: what rank r measured.

Sends are non-blocking (``isend``). A receive polls (``iprobe``) until its message is
there or ``timeout`` seconds have passed; then it raises :class:`PipelineError` naming the
rank, the message and the step, instead of hanging for ever on a rank that died or a
message that was never sent. MPI keeps the order of messages between two ranks with the
same tag, and every receive checks the step it expected.
"""

from __future__ import annotations

import time
from typing import Any

FORWARD, GRADIENT, RESULT = 1, 2, 3
NAMES = {FORWARD: "activations", GRADIENT: "gradient", RESULT: "results"}


class PipelineError(RuntimeError):
    """A message did not arrive in time, or arrived out of order."""


class Link:
    """One rank's messaging: non-blocking sends, receives with a timeout, wait time.

    ``waited`` accumulates the seconds spent blocked in :meth:`recv`: the part of a rank's
    wall time in which it had nothing to compute.
    """

    def __init__(self, comm: Any, timeout: float = 60.0, poll: float = 1e-4):
        self.comm, self.rank, self.size = comm, comm.Get_rank(), comm.Get_size()
        self.timeout, self.poll = timeout, poll
        self.pending: list[Any] = []  # isend requests not yet known to be complete
        self.waited = 0.0

    def send(self, dest: int, tag: int, message: tuple) -> None:
        """Send ``message`` (pickled now, so the caller may reuse its arrays)."""
        self.pending.append(self.comm.isend(message, dest=dest, tag=tag))
        if len(self.pending) > 64:  # free the buffers of completed sends now and then
            self.pending = [r for r in self.pending if not r.Test()]

    def ready(self, source: int, tag: int) -> bool:
        """Whether a message from ``source`` with ``tag`` can be received without waiting."""
        return self.comm.iprobe(source=source, tag=tag)

    def recv(self, source: int, tag: int, step: int | None = None) -> tuple:
        """The next message from ``source`` with ``tag``; checks that it is for ``step``.

        Raises :class:`PipelineError` after ``timeout`` seconds without it.
        """
        start = time.perf_counter()
        deadline = start + self.timeout
        while not self.comm.iprobe(source=source, tag=tag):
            if time.perf_counter() > deadline:
                what = NAMES[tag] + ("" if step is None else f" of step {step}")
                raise PipelineError(
                    f"rank {self.rank}: no {what} from rank {source} within "
                    f"{self.timeout:g} s; did rank {source} die or stop sending?"
                )
            time.sleep(self.poll)
        message = self.comm.recv(source=source, tag=tag)
        self.waited += time.perf_counter() - start
        if step is not None and message[0] != step:
            raise PipelineError(
                f"rank {self.rank}: expected {NAMES[tag]} of step {step} from rank {source}, "
                f"got step {message[0]}"
            )
        return message

    def barrier(self) -> None:
        """Wait until every rank is here (an MPI barrier, with the timeout)."""
        request, deadline = self.comm.Ibarrier(), time.perf_counter() + self.timeout
        while not request.Test():
            if time.perf_counter() > deadline:
                raise PipelineError(
                    f"rank {self.rank}: not every rank started in {self.timeout:g} s"
                )
            time.sleep(self.poll)

    def drain(self, source: int, tag: int, count: int) -> None:
        """Receive and drop ``count`` messages that nobody will use (the last stale
        gradients of a run), so that no message is left in flight at the end."""
        for _ in range(count):
            self.recv(source, tag)

    def close(self) -> None:
        """Wait (with the timeout) until every send has completed."""
        deadline = time.perf_counter() + self.timeout
        while self.pending:
            self.pending = [r for r in self.pending if not r.Test()]
            if self.pending and time.perf_counter() > deadline:
                raise PipelineError(f"rank {self.rank}: sends not completed in {self.timeout:g} s")
            time.sleep(self.poll)
