"""The matmul bound: a step's own matrix products, recorded once and replayed alone.

A step cannot be faster than its matmuls. Recording the operand shapes of every
``xp.matmul`` one step makes and replaying them back to back on fresh contiguous arrays
gives the step's FLOPs at the BLAS throughput measured at exactly those shapes; the
fraction of a step this replay takes says how much is left to gain outside the products.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import backend
from .timing import MatmulShapes, Step


def record_matmuls(step: Step) -> MatmulShapes:
    """The operand shapes of every ``xp.matmul`` one call of ``step()`` makes.

    The namespace's ``matmul`` is wrapped for that one call and restored afterwards.
    """
    xp = backend.namespace()
    original, shapes = xp.matmul, []

    def recording(a, b):
        shapes.append((tuple(a.shape), tuple(b.shape)))
        return original(a, b)

    xp.matmul = recording
    try:
        step()
    finally:
        xp.matmul = original
    return shapes


def matmul_replay(shapes: MatmulShapes) -> Step:
    """A step that runs just these matmuls, back to back, on fixed random operands."""
    xp, rng = backend.namespace(), backend.RNG(1)
    operands = [(rng.normal(a), rng.normal(b)) for a, b in shapes]

    def step() -> None:
        for a, b in operands:
            xp.matmul(a, b)

    return step


def matmul_flops(shapes: Sequence[tuple[tuple[int, ...], tuple[int, ...]]]) -> int:
    """Floating-point operations of these matmuls: 2 m k n each (2-d operands)."""
    return sum(2 * a[0] * a[1] * b[1] for a, b in shapes)
