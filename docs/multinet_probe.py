"""How much of B's message gradient can anything on A's side predict?

Trains the ``multinet`` quick system (``minidni reproduce multinet --profile quick``: the
same seed, data stream and settings, so the run is the experiment's own run of that
seed) for each checkpoint in STEPS, then freezes it and, on fresh training digits:

1. **logs** for every message B reads (S streams, W windows) the triple (A's state
   h^A_t and the phase, the message m_t, B's true ``delta_t = S * dL_B/dm_t``) and what
   A has seen of the window so far (the position t, the 3s among digits 0..t);
2. **fits offline** on 3/4 of the streams, R^2 on the other 1/4: ridge regression and
   an MLP (one hidden layer of 128, BatchNorm, ReLU; Adam 1e-3, early stopping), on
   M's own inputs ``[m_t, h^A_t, phase]`` (``m_inputs``); on those plus the digit's
   label (``+label``, one-hot); and plus what A has seen of the window as well
   (``+seen``: the label, the position t in the window, the count of 3s among digits
   0..t and whether digit t is a 3);
3. **bounds** the R^2 of *any* predictor of ``delta_t`` from everything before step t
   (the digits' images, both states): for each message, the window's later digits are
   redrawn R times and the spread of ``delta_t`` over the redraws is the part no such
   predictor can explain: ``R^2_max = 1 - E[Var(delta_t | past)] / Var(delta_t)``
   (Monte Carlo, the variance with ddof = 1). ``--cut piece`` conditions on the end of
   t's piece instead (what A has seen when it next updates);
4. scores **the online M** (DNI runs) on the same held-out triples.

R^2 here is ``1 - sum ||pred - delta||^2 / sum ||delta - mean(delta)||^2`` over the
held-out rows (the mean over all of them); the experiment's ``sg_r2`` uses the mean of
each batch instead, so it reads a little lower for the same predictions.

    MINIDNI_DATA_DIR=../shared/data PYTHONPATH=. python docs/multinet_probe.py \\
        --k 4 --method dni --steps 1024 8192 [--set b_reads=last] [--out probe.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from minidni import backend
from minidni.data import load_mnist
from minidni.experiments.multinet import PROFILES
from minidni.multinet import D_X, MultiNet, count_targets
from minidni.synthetic import L2Regressor

SYSTEM = ("d_enc", "h_a", "d_msg", "h_b", "lr", "sg_lr", "sg_scale", "b_reads")


class NoStep:
    """An optimizer that leaves the parameters as they are (the system is frozen)."""

    def step(self) -> None:
        pass


def build(k: int, method: str, config: dict, seed: int) -> MultiNet:
    """The experiment's system for (k, method, seed) (``multinet_job``'s construction)."""
    kwargs = {key: config[key] for key in SYSTEM}
    return MultiNet(k, method, backend.RNG(seed), sg_hidden=tuple(config["sg_hidden"]), **kwargs)


def digits(X: np.ndarray, rng: np.random.Generator, s: int, n: int, n_train: int) -> tuple:
    """S streams of n random training digits: x (S, n, 784) and their indices (S, n)."""
    idx = rng.integers(0, n_train, (s, n))
    return X[idx.reshape(-1)].reshape(s, n, D_X), idx


def b_deltas(net: MultiNet, ticks: list[dict], yb: np.ndarray, first: int) -> np.ndarray:
    """B's true ``delta = S * dL_B/dm`` of the messages read at ticks first..k-1 (ticks
    holds those ticks only): (S, k - first, n_read, D_m). Parameter gradients are left
    accumulated, unused."""
    k, r, d = net.k, net.n_read, net.d_msg
    s = yb.shape[0]
    logits, head_cache = net.head_b.forward(ticks[-1]["h"])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(s), yb] -= 1.0  # dL/dlogits * S for the mean cross-entropy
    dh = net.head_b.backward(p.astype(logits.dtype), head_cache)[:, None, :]  # (S, 1, H_B)
    out, dstate = [], None
    for i in reversed(range(len(ticks))):
        dx, dstate = net.lstm_b.backward(
            dh if i == len(ticks) - 1 else np.zeros_like(dh), dstate, ticks[i]["cache"]
        )
        out.append(dx[:, 0, : r * d].reshape(s, r, d))
    assert len(out) == k - first
    return np.stack(out[::-1], axis=1)


def run_window(net: MultiNet, x: np.ndarray, state_a, state_b, first: int = 0) -> tuple:
    """Pieces first..k-1 of a window from the states at the start of piece ``first``:
    (pieces, ticks, end states)."""
    k = net.k
    pieces, ticks = [], []
    for j in range(first, k):
        piece = net._a_piece(x[:, (j - first) * k : (j - first + 1) * k, :], j * k, state_a)
        tick = net._b_tick(piece["m"], j, j * k, state_b)
        state_a, state_b = piece["state"], tick["state"]
        pieces.append(piece)
        ticks.append(tick)
    return pieces, ticks, state_a, state_b


def repeat(state, r: int):
    return tuple(np.repeat(a, r, axis=0) for a in state)


def probe_windows(
    net: MultiNet, X, y_train, rng, s: int, windows: int, mc_windows: int, redraws: int, cut: str
) -> dict:
    """Log triples over ``windows`` windows of ``s`` streams (from zero states after two
    warm-up windows), and R^2_max from the redraws in the first ``mc_windows`` of them."""
    k, r, d = net.k, net.n_read, net.d_msg
    rows = {key: [] for key in ("m", "c", "label", "seen", "delta", "pred", "stream", "piece")}
    cond_var = np.zeros(k)  # sum over (stream, message) of Var(delta_t | past), per piece
    mc_rows = [[] for _ in range(k)]  # the redrawn deltas, for the total variance
    state_a = state_b = None
    for _ in range(2):  # warm up the states
        idx = rng.integers(0, len(y_train), (s, k * k))
        x = X[idx.reshape(-1)].reshape(s, k * k, D_X)
        _, _, state_a, state_b = run_window(net, x, state_a, state_b)
    read = list(range(k - r, k))  # positions within a piece of the messages B reads
    for w in range(windows):
        idx = rng.integers(0, len(y_train), (s, k * k))
        x = X[idx.reshape(-1)].reshape(s, k * k, D_X)  # (S, k^2, 784)
        labels = y_train[idx]
        yb = count_targets(labels, k)[1][:, 0]
        starts = [(state_a, state_b)]
        pieces, ticks, state_a, state_b = run_window(net, x, state_a, state_b)
        starts += [(p["state"], t["state"]) for p, t in zip(pieces, ticks)]
        delta = b_deltas(net, ticks, yb, 0)  # (S, k, n_read, D_m)
        threes = np.cumsum(labels == 3, axis=1)  # 3s among digits 0..t
        for j, piece in enumerate(pieces):
            t = j * k + np.array(read)  # steps within the window
            phase = np.broadcast_to(np.eye(k)[read], (s, r, k))
            c = np.concatenate([piece["hs"][:, read, :], phase], axis=2)  # (S, n_read, H_A + k)
            pos = np.broadcast_to(np.eye(k * k)[t], (s, r, k * k))
            seen = np.eye(k * k + 1)[threes[:, t]]  # (S, n_read, k^2 + 1)
            now = (labels[:, t] == 3)[..., None]
            rows["m"].append(piece["m"][:, read, :].reshape(s * r, d))
            rows["c"].append(c.reshape(s * r, -1))
            rows["label"].append(np.eye(10)[labels[:, t]].reshape(s * r, 10))
            rows["seen"].append(np.concatenate([pos, seen, now], axis=2).reshape(s * r, -1))
            rows["delta"].append(delta[:, j].reshape(s * r, d))
            rows["stream"].append(np.repeat(np.arange(s), r))
            rows["piece"].append(np.full(s * r, j))
            if net.M is not None:
                pred, _ = net.M.predict(rows["m"][-1], rows["c"][-1], train=False)
                rows["pred"].append(pred)
        # Monte Carlo: redraw the window's digits after the cut, R times per stream
        for j in range(k if w < mc_windows else 0):
            for i, pos_in in enumerate(read):
                t = j * k + pos_in
                keep = j * k + k if cut == "piece" else t + 1  # digits 0..keep-1: the past
                ridx = rng.integers(0, len(y_train), (s * redraws, k * k))
                ridx[:, :keep] = np.repeat(idx[:, :keep], redraws, axis=0)
                xr = X[ridx[:, j * k :].reshape(-1)].reshape(s * redraws, k * k - j * k, D_X)
                sa, sb = (repeat(state, redraws) for state in starts[j])
                _, rticks, _, _ = run_window(net, xr, sa, sb, first=j)
                rcount = (y_train[ridx] == 3).sum(axis=1)
                rd = b_deltas(net, rticks, rcount, j)[:, 0, i, :]  # (S*R, D_m), per example
                rd = rd.reshape(s, redraws, d)
                cond_var[j] += rd.var(axis=1, ddof=1).sum()
                mc_rows[j].append(rd.reshape(-1, d))
    out = {key: np.concatenate(v) for key, v in rows.items() if v}
    every = np.concatenate([np.concatenate(m) for m in mc_rows])
    total = np.mean(np.sum((every - every.mean(axis=0)) ** 2, axis=1))
    n = len(every) / redraws  # (stream, message) pairs
    out["r2_max"] = float(1.0 - cond_var.sum() / n / total)
    per_piece = []
    for j in range(k):
        rj = np.concatenate(mc_rows[j])
        var_j = np.mean(np.sum((rj - rj.mean(axis=0)) ** 2, axis=1))
        per_piece.append(float(1.0 - cond_var[j] / (len(rj) / redraws) / var_j))
    out["r2_max_piece"] = per_piece
    return out


def r2(pred: np.ndarray, target: np.ndarray) -> float:
    """1 - SSE / SST over the rows (SST around the rows' mean)."""
    return float(1.0 - np.sum((pred - target) ** 2) / np.sum((target - target.mean(axis=0)) ** 2))


def standardise(f_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale of every feature column; a column constant over the training rows
    keeps scale 1 (a one-hot value never seen in training must not blow up in testing)."""
    sd = f_train.std(axis=0)
    return f_train.mean(axis=0), np.where(sd > 1e-6, sd, 1.0)


def ridge(f_train, y_train, f_test, lam: float = 1e-3) -> np.ndarray:
    """Ridge regression on standardised features (with a bias); predictions for f_test."""
    mu, sd = standardise(f_train)
    a = np.concatenate([(f_train - mu) / sd, np.ones((len(f_train), 1))], axis=1)
    w = np.linalg.solve(a.T @ a + lam * len(a) * np.eye(a.shape[1]), a.T @ y_train)
    return np.concatenate([(f_test - mu) / sd, np.ones((len(f_test), 1))], axis=1) @ w


def mlp_fit(f_train, y_train, f_test, seed: int, epochs: int = 60) -> np.ndarray:
    """An MLP (128 hidden, BatchNorm, ReLU; minidni's L2Regressor, Adam 1e-3, batches of
    256), early-stopped on a tenth of the training rows; predictions for f_test."""
    mu, sd = standardise(f_train)
    scale = float(np.sqrt(np.mean(np.sum(y_train**2, axis=1)))) + 1e-12
    fz, yz, tz = (f_train - mu) / sd, y_train / scale, (f_test - mu) / sd
    gen = np.random.default_rng(seed)
    order = gen.permutation(len(fz))
    val, fit = order[: len(fz) // 10], order[len(fz) // 10 :]
    net = L2Regressor(fz.shape[1], yz.shape[1], backend.RNG(seed), hidden=(128,), lr=1e-3)
    best, best_params, patience = np.inf, None, 0
    for _ in range(epochs):
        for b in np.array_split(gen.permutation(fit), max(1, len(fit) // 256)):
            pred, cache = net.forward(fz[b].astype(np.float32))
            net.update(cache, pred, yz[b].astype(np.float32))
        err = np.mean((net.forward(fz[val].astype(np.float32), train=False)[0] - yz[val]) ** 2)
        if err < best - 1e-6:
            best, patience = err, 0
            best_params = [p.value.copy() for p in net.net.parameters()]
            best_stats = [
                (layer.running_mean.copy(), layer.running_var.copy())
                for layer in net.net.layers
                if hasattr(layer, "running_mean")
            ]
        else:
            patience += 1
            if patience >= 5:
                break
    for p, v in zip(net.net.parameters(), best_params):
        p.value = v
    for layer, (mean, var) in zip(
        [la for la in net.net.layers if hasattr(la, "running_mean")], best_stats
    ):
        layer.running_mean, layer.running_var = mean, var
    return net.forward(tz.astype(np.float32), train=False)[0] * scale


def analyse(data: dict, seed: int) -> dict:
    """Offline R^2 on held-out streams (the last quarter) of every predictor."""
    test = data["stream"] >= int(data["stream"].max() * 3 / 4) + 1
    m_in = np.concatenate([data["m"], data["c"]], axis=1)  # M's own inputs
    with_label = np.concatenate([m_in, data["label"]], axis=1)
    with_seen = np.concatenate([with_label, data["seen"]], axis=1)
    y = data["delta"]
    out = {"rows_train": int((~test).sum()), "rows_test": int(test.sum())}
    sets = (("m_inputs", m_in), ("m_inputs+label", with_label), ("m_inputs+seen", with_seen))
    for name, f in sets:
        out[f"ridge {name}"] = r2(ridge(f[~test], y[~test], f[test]), y[test])
        out[f"mlp {name}"] = r2(mlp_fit(f[~test], y[~test], f[test], seed), y[test])
    if "pred" in data:
        p, t = data["pred"][test], y[test]
        out["online M"] = r2(p, t)
        out["online M r2_zero"] = float(1.0 - np.sum((p - t) ** 2) / np.sum(t * t))
        out["online M cos"] = float(np.sum(p * t) / np.sqrt(np.sum(p * p) * np.sum(t * t) + 1e-30))
    out["r2_max"] = data["r2_max"]
    out["r2_max_piece"] = data["r2_max_piece"]
    out["delta_rms"] = float(np.sqrt(np.mean(np.sum(y**2, axis=1))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, required=True)
    parser.add_argument("--method", choices=["bprop", "dni"], default="dni")
    parser.add_argument("--steps", type=int, nargs="+", default=[8192])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=int, default=24576, help="triples to log, about")
    parser.add_argument("--mc-windows", type=int, default=8, help="windows with redraws")
    parser.add_argument("--redraws", type=int, default=8)
    parser.add_argument("--cut", choices=["step", "piece"], default="step")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    from minidni.sg_quality import sg_quality

    config = dict(PROFILES["quick"])
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in config:
            raise SystemExit(f"unknown setting {key!r}")
        config[key] = json.loads(value)
    k, batch, window = args.k, config["batch_size"], args.k * args.k
    x_train, y_train = load_mnist("train")
    net = build(k, args.method, config, args.seed)
    data_rng = np.random.default_rng([args.seed, 2024])  # the experiment's digit stream
    probe_rng = np.random.default_rng([args.seed, 7])
    report, sg, started = [], None, time.perf_counter()
    for steps in sorted(args.steps):
        while net.steps < steps:
            if net.steps % config["log_every"] == 0:
                sg = None  # keep the last log interval only, as the experiment's curve
            idx = data_rng.integers(0, len(y_train), (batch, window))
            stats = net.train_window(
                x_train[idx.reshape(-1)].reshape(batch, window, D_X), y_train[idx]
            )
            if "sg" in stats:
                sg = stats["sg"] if sg is None else {key: sg[key] + stats["sg"][key] for key in sg}
        opts = (net.opt_a, net.opt_b)
        net.opt_a = net.opt_b = NoStep()
        windows = -(-args.rows // (batch * net.n_read * k))
        data = probe_windows(
            net,
            x_train,
            y_train,
            probe_rng,
            batch,
            windows,
            args.mc_windows,
            args.redraws,
            args.cut,
        )
        net.opt_a, net.opt_b = opts
        result = {"k": k, "method": args.method, "steps": steps, "seed": args.seed}
        result.update(analyse(data, args.seed))
        if sg is not None:
            r2_online, r2_zero, cos = sg_quality(sg)
            result.update(online_sg_r2=r2_online, online_sg_r2_zero=r2_zero, online_sg_cos=cos)
        result["seconds"] = round(time.perf_counter() - started, 1)
        report.append(result)
        print(json.dumps(result), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"config": config, "cut": args.cut, "results": report}, f, indent=1)


if __name__ == "__main__":
    main()
