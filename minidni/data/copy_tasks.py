"""The Copy and Repeat Copy tasks (Graves et al. 2014, Neural Turing Machines), as in DNI.

A pattern is ``L = length`` random binary vectors of ``bits`` bits (B sequences a
batch). The network reads it, then must write it back from memory. Arrays are host
NumPy float32, batch-major: inputs (B, T, D_in), targets (B, T, D_out), mask (B, T),
with mask 1 exactly on the output steps (where the loss and the bit errors count).

Copy, T = 2L + 1, D_in = bits + 1, D_out = bits::

    step      0 .. L-1    L       L+1 .. 2L
    input     pattern     .       .            (bits channels)
    delim     0           1       0            (input channel bits)
    target    .           .       pattern
    mask      0           0       1

Repeat Copy with R = ``repeats`` copies, T = L + 1 + R*L + 1, D_in = bits + 2,
D_out = bits + 1::

    step      0 .. L-1    L          L+1 .. L+R*L       L+R*L+1
    input     pattern     .          .                  .
    delim     0           1          0                  0          (input channel bits)
    count     0           R/max_R    0                  0          (input channel bits+1)
    target    .           .          pattern x R        .
    end       0           0          0                  1          (target channel bits)
    mask      0           0          1                  1

(``.`` is all zeros.) The repeat count is given as R / ``max_repeats``, in (0, 1], and the
network must also predict where the output ends, with the end marker.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend

Batch = tuple[np.ndarray, np.ndarray, np.ndarray]


def _pattern(rng: np.random.Generator, batch_size: int, length: int, bits: int) -> np.ndarray:
    if batch_size < 1 or length < 1 or bits < 1:
        raise ValueError(
            f"batch_size, length and bits must be positive, got {batch_size}, {length}, {bits}"
        )
    return rng.integers(0, 2, size=(batch_size, length, bits)).astype(np.float32)  # (B, L, bits)


def copy_batch(rng: np.random.Generator, batch_size: int, length: int, bits: int = 8) -> Batch:
    """A Copy batch: inputs (B, 2L+1, bits+1), targets (B, 2L+1, bits), mask (B, 2L+1)."""
    pattern = _pattern(rng, batch_size, length, bits)
    steps = 2 * length + 1
    inputs = np.zeros((batch_size, steps, bits + 1), dtype=np.float32)
    targets = np.zeros((batch_size, steps, bits), dtype=np.float32)
    mask = np.zeros((batch_size, steps), dtype=np.float32)
    inputs[:, :length, :bits] = pattern
    inputs[:, length, bits] = 1.0  # delimiter: the pattern is over
    targets[:, length + 1 :] = pattern
    mask[:, length + 1 :] = 1.0
    return inputs, targets, mask


def repeat_copy_batch(
    rng: np.random.Generator,
    batch_size: int,
    length: int,
    repeats: int,
    bits: int = 8,
    max_repeats: int = 10,
) -> Batch:
    """A Repeat Copy batch, T = L + 1 + R*L + 1 (layout in the module docstring).

    Returns inputs (B, T, bits+2), targets (B, T, bits+1), mask (B, T).
    """
    if not 1 <= repeats <= max_repeats:
        raise ValueError(f"repeats must be in 1..max_repeats={max_repeats}, got {repeats}")
    pattern = _pattern(rng, batch_size, length, bits)
    out_start = length + 1
    end = out_start + repeats * length  # the end-marker step
    steps = end + 1
    inputs = np.zeros((batch_size, steps, bits + 2), dtype=np.float32)
    targets = np.zeros((batch_size, steps, bits + 1), dtype=np.float32)
    mask = np.zeros((batch_size, steps), dtype=np.float32)
    inputs[:, :length, :bits] = pattern
    inputs[:, length, bits] = 1.0  # delimiter
    inputs[:, length, bits + 1] = repeats / max_repeats  # how many copies, in (0, 1]
    targets[:, out_start:end, :bits] = np.tile(pattern, (1, repeats, 1))  # (B, R*L, bits)
    targets[:, end, bits] = 1.0  # end marker
    mask[:, out_start:] = 1.0
    return inputs, targets, mask


def bits_error(logits: Any, targets: Any, mask: Any) -> float:
    """Wrong bits per sequence, averaged over the batch, on masked steps only.

    A bit is predicted 1 where its logit is > 0. Shapes: logits and targets (B, T, D),
    mask (B, T). Arrays of any backend (they are copied to the host).
    """
    logits, targets, mask = (backend.to_numpy(a) for a in (logits, targets, mask))
    wrong = (logits > 0) != (targets > 0.5)  # (B, T, D)
    return float((wrong * mask[:, :, None]).sum() / logits.shape[0])
