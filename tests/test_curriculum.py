"""The Copy / Repeat Copy curriculum rule (minidni.experiments.rnn_copy.Curriculum)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidni.data import Curriculum

errors = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=0, max_size=80)


def reference_levels(task, errs, window, threshold, max_repeats):
    """A direct transcription of the documented rule: the (N, R) after every batch."""
    n, r, recent, levels = 1, 1, [], []
    for e in errs:
        recent.append(e)
        if len(recent) >= window and np.mean(recent[-window:]) < threshold:
            if task == "copy" or n == r or r >= max_repeats:
                n += 1
            else:
                r += 1
            recent = []
        levels.append((n, r))
    return levels


@given(
    task=st.sampled_from(["copy", "repeat_copy"]),
    errs=errors,
    window=st.integers(1, 6),
    threshold=st.sampled_from([0.15, 0.3, 0.5]),
    max_repeats=st.integers(1, 4),
)
def test_curriculum_follows_the_documented_rule(task, errs, window, threshold, max_repeats):
    cur = Curriculum(task, window, threshold, max_repeats)
    expected = reference_levels(task, errs, window, threshold, max_repeats)
    previous = (1, 1)
    for e, (n, r) in zip(errs, expected):
        advanced = cur.update(e)
        assert (cur.n, cur.r) == (n, r)
        assert advanced == ((n, r) != previous)
        if advanced:
            assert cur.solved == previous
        previous = (n, r)
        assert cur.r <= max_repeats
        if task == "copy":
            assert cur.r == 1


@given(window=st.integers(1, 8), level_batches=st.integers(0, 30))
def test_each_level_needs_a_full_window_of_its_own_batches(window, level_batches):
    """Perfect batches advance exactly once per `window` batches, never sooner."""
    cur = Curriculum("copy", window=window)
    for _ in range(level_batches):
        cur.update(0.0)
    assert cur.levels_passed == level_batches // window
    assert cur.n == 1 + level_batches // window
    assert cur.solved_length == level_batches // window


def test_threshold_is_strict_and_the_window_is_a_mean():
    cur = Curriculum("copy", window=2, threshold=0.15)
    assert not cur.update(0.15) and not cur.update(0.15)  # mean == threshold: not solved
    assert not cur.update(0.5)  # window (0.15, 0.5): mean 0.325
    assert cur.update(0.0) is False  # window (0.5, 0.0): mean 0.25
    assert cur.update(0.1) is True  # window (0.0, 0.1): mean 0.05 < 0.15
    assert (cur.n, cur.solved, cur.solved_length) == (2, (1, 1), 1)
    assert np.isnan(cur.mean_error())  # the window starts empty at the new level


def test_repeat_copy_alternates_n_and_r_until_r_is_capped():
    cur = Curriculum("repeat_copy", window=1, max_repeats=3)
    levels = [(cur.n, cur.r)]
    for _ in range(7):
        assert cur.update(0.0)
        levels.append((cur.n, cur.r))
    assert levels == [(1, 1), (2, 1), (2, 2), (3, 2), (3, 3), (4, 3), (5, 3), (6, 3)]
    assert cur.solved == (5, 3) and cur.solved_length == 15


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="copy, repeat_copy"):
        Curriculum("reverse")
    with pytest.raises(ValueError, match="window"):
        Curriculum("copy", window=0)
