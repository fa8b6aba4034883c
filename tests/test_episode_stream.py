"""Continuous streams of Copy episodes (minidni.data.episode_stream) and the stream mode of
``rnn-copy``: segments run over episode boundaries, the state is never reset, and every
episode's error is counted exactly once."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from minidni.backend import RNG, to_numpy
from minidni.data import copy_batch, curriculum
from minidni.data.episode_stream import EpisodeStream
from minidni.experiments import jobs, rnn_copy


def numbered_episodes(lengths: list[int], d: int = 2):
    """Episodes whose every step carries (episode number, step number): easy to trace."""
    drawn = []

    def new_episode():
        k = len(drawn)
        n = lengths[k % len(lengths)]
        x = np.stack([np.full(n, float(k)), np.arange(n, dtype=float)], axis=1)  # (n, 2)
        y = (np.arange(n)[:, None] % 2 == 0).astype(float) * np.ones((1, d))  # (n, d)
        mask = (np.arange(n) >= n // 2).astype(float)  # (n,)
        drawn.append((x, y, mask))
        return x, y, mask, k

    return new_episode, drawn


@given(
    lengths=st.lists(st.integers(1, 9), min_size=1, max_size=6),
    T=st.integers(1, 7),
    batch=st.integers(1, 3),
    segments=st.integers(1, 12),
)
def test_segments_run_over_episode_boundaries_and_errors_count_once(lengths, T, batch, segments):
    new_episode, drawn = numbered_episodes(lengths)
    stream = EpisodeStream(batch, new_episode)
    served, finished = [], []
    rng = np.random.default_rng(0)
    for _ in range(segments):
        x, y, mask = stream.next_segment(T)
        assert x.shape == (batch, T, 2) and y.shape == (batch, T, 2) and mask.shape == (batch, T)
        logits = rng.normal(size=y.shape)
        served.append((x, y, mask, logits))
        finished += stream.score(logits)
    assert stream.started == len(drawn)
    for row in range(batch):
        xs = np.concatenate([s[0][row] for s in served])  # (segments * T, 2)
        ids = xs[:, 0].astype(int)
        # the row is whole episodes back to back, in the order drawn, each complete
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        for a, b in zip(starts, list(starts[1:]) + [len(ids)]):
            episode = drawn[ids[a]][0]
            np.testing.assert_array_equal(xs[a:b], episode[: b - a])
            assert b - a == len(episode) or b == len(ids)  # only the last may be cut off
    # every finished episode's errors are those of its own steps, whatever it spanned
    assert len({f.tag for f in finished}) == len(finished)
    for f in finished:
        steps = [
            (s[1][r, t], s[2][r, t], s[3][r, t])
            for s in served
            for r in range(batch)
            for t in range(T)
            if int(s[0][r, t, 0]) == f.tag
        ]
        y, m, z = (np.stack(a) for a in zip(*steps))
        assert f.length == len(drawn[f.tag][0]) == len(steps)
        wrong = (((z > 0) != (y > 0.5)).sum(axis=1) * m).sum()
        nats = (np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))).sum(axis=1)
        assert f.wrong_bits == wrong
        assert math.isclose(f.xent_bits, (nats * m).sum() / math.log(2), rel_tol=1e-12)


def test_xent_bits_on_hand_computed_examples():
    """Cross-entropy in bits: a logit of 0 costs exactly 1 bit per masked bit; a confident
    right answer costs almost nothing; a masked-out step costs nothing."""
    y = np.array([[[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]])  # (1, 3, 2): one episode
    mask = np.array([[0.0, 1.0, 1.0]])

    def one_episode():
        return y[0], y[0], mask[0], "e"

    stream = EpisodeStream(1, one_episode)
    stream.next_segment(3)
    logits = np.array([[[5.0, 5.0], [0.0, 0.0], [-40.0, -40.0]]])
    (f,) = stream.score(logits)
    assert f.wrong_bits == 2.0  # a logit of 0 predicts 0: both bits of step 1 are wrong
    expected = 2 * 1.0 + 2 * math.log1p(math.exp(-40.0)) / math.log(2)
    assert math.isclose(f.xent_bits, expected, rel_tol=1e-12)
    # flipping the masked step's logits changes nothing; a wrong confident bit costs a lot
    stream.next_segment(3)
    (g,) = stream.score(np.array([[[-5.0, -5.0], [0.0, 0.0], [40.0, -40.0]]]))
    assert g.wrong_bits == 3.0
    tail = (40.0 + 2 * math.log1p(math.exp(-40.0))) / math.log(2)
    assert math.isclose(g.xent_bits, 2.0 + tail, rel_tol=1e-12)


def test_stream_mode_never_resets_the_state(xp, float64):
    """rnn-copy's stream loop: with the weights frozen (lr = 0), the logits it trains on,
    segment after segment, are those of one forward pass over the whole stream from the
    zero state, so the state is carried across every episode and segment boundary."""
    job = {
        **rnn_copy.PROFILES["smoke"],
        "task": "copy",
        "T": 3,
        "method": "dni",
        "seed": 0,
        "lr": 0.0,
        "sg_lr": 0.0,
        "budget": 12,
        "batch_size": 2,
        "log_every": 1,
        "stream": True,
    }
    model = jobs.tbptt_model(job, *curriculum.task_dims("copy", job["bits"]), "bce", RNG(0))
    seen, resets = [], []
    segment, reset = model.segment, model.reset

    def recording_segment(x, y, mask=None, last=False):
        seen.append((x, segment(x, y, mask, last)))
        return seen[-1][1]

    def recording_reset(batch_size):
        resets.append(batch_size)
        reset(batch_size)

    model.segment, model.reset = recording_segment, recording_reset
    cur = curriculum.Curriculum("copy", window=1, threshold=1e-9)
    log = rnn_copy._Log()
    done = rnn_copy._stream_loop(job, model, cur, log, np.random.default_rng(1))
    assert done == 12 and resets == [2] and len(seen) > 2
    x_all = xp.concat([x for x, _ in seen], axis=1)  # (B, steps, D_in)
    logits_all = xp.concat([out["logits"] for _, out in seen], axis=1)
    expected, _ = model.predict(x_all)
    np.testing.assert_allclose(to_numpy(logits_all), to_numpy(expected), rtol=0, atol=1e-12)
    assert log.curve["samples"][-1] == 12


def test_episode_length_and_the_solved_episode():
    assert curriculum.episode_length("copy", 3) == 7
    assert curriculum.episode_length("repeat_copy", 2, 3) == 2 + 1 + 6 + 1
    cur = curriculum.Curriculum("repeat_copy", window=1, threshold=0.5)
    assert cur.solved_episode_length == 0
    for _ in range(3):
        cur.update(0.0)  # (1,1) -> (2,1) -> (2,2) solved
    assert cur.solved == (2, 2) and cur.solved_episode_length == 2 + 1 + 4 + 1
    x, _, _ = copy_batch(np.random.default_rng(0), 1, 3)
    assert x.shape[1] == curriculum.episode_length("copy", 3)


def test_criterion_decides_the_level_up(xp):
    """The same run under the two criteria: xent_bits (the paper's) is the stricter one,
    since every wrong bit costs at least one bit of cross-entropy."""
    base = {
        **rnn_copy.PROFILES["smoke"],
        "task": "copy",
        "T": 5,
        "method": "bprop",
        "seed": 0,
        "stream": False,
        "threshold": 0.15,
    }
    runs = {c: rnn_copy.run_job({**base, "criterion": c}) for c in ("xent_bits", "wrong_bits")}
    for run in runs.values():
        curve = run["curve"]
        assert all(x >= 0 for x in curve["xent_bits"]) and all(e >= 0 for e in curve["bits_error"])
    # within a run, the logged cross-entropy is never below the wrong-bit count
    curve = runs["wrong_bits"]["curve"]
    assert all(x >= e - 1e-9 for x, e in zip(curve["xent_bits"], curve["bits_error"]))
