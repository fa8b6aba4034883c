"""``minidni parallel`` with one rank made faulty, for tests/test_pipeline.py.

Usage (under mpiexec): ``python tests/mpi/faulty_rank.py KIND:RANK:STEP ARGS...``, where
ARGS are the arguments of the ``minidni`` command. At step STEP, rank RANK says so on
stdout and then dies (KIND ``die``: exits with status 3 at once, as a crashed process
would) or hangs (``hang``: stops sending, as a process stuck in a loop would). The fault
is patched in here, so that the library itself carries no test hooks.
"""

from __future__ import annotations

import os
import sys
import time

from minidni.parallel import pipeline
from minidni.tools.cli import main

kind, rank, step = sys.argv[1].split(":")
assert kind in ("die", "hang"), kind
original_step = pipeline.Rank.step


def faulty_step(self: pipeline.Rank, t: int, x, labels) -> None:
    if (self.r, t) == (int(rank), int(step)):
        print(f"rank {self.r}: injected fault {kind!r} at step {t}", flush=True)
        if kind == "die":
            os._exit(3)
        time.sleep(3600)
    original_step(self, t, x, labels)


pipeline.Rank.step = faulty_step
sys.exit(main(sys.argv[2:]))
