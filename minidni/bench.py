"""``minidni bench``: milliseconds per training step, optionally beside PyTorch.

Times one training step (forward, backward, Adam update; float32) of

- the paper's MNIST MLP 784-256-...-256-10 (Linear + BatchNorm + ReLU, 3 and 6 hidden
  layers, batch 256) with backprop, every-layer cDNI (linear SG) and every-layer DNI
  (SG 1024-1024), on random data of MNIST's shape;
- one truncated-BPTT segment of an LSTM core (256 units, batch 64, T = 8, readout and
  sigmoid BCE on Copy-shaped data) with BPTT, DNI and DNI + Aux.

``--compare torch`` builds the same Bprop MLP and BPTT LSTM in PyTorch (same shapes,
dtype, optimizer and thread count) and times them in the same process, interleaved with
minidni round by round, so that load from other processes hits both alike. PyTorch is an
optional benchmark dependency only (``pip install 'minidni[bench]'``); the library never
imports it.

Each row also gives the *matmul bound*: the time of the step's own matrix products (the
shapes recorded from one step, replayed back to back on fresh arrays), and the fraction
of it a step reaches (bound / step time). A step cannot be faster than its matmuls, so
this says how much is left to gain outside them.

Method: every model runs ``warmup`` steps first (discarded); then ``rounds`` rounds, in
each of which every model (minidni, its matmul bound, PyTorch) runs ``steps`` steps; a
round's time is its mean ms per step, and the table gives the median over rounds.
"""

from __future__ import annotations

import ctypes
import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import backend
from .decoupled import build_mlp
from .tbptt import TBPTT

Step = Callable[[], Any]

MLP_DEPTHS = (3, 6)
MLP_METHODS = (
    ("bprop", "bprop", ()),
    ("cdni (linear SG)", "cdni", ()),
    ("dni (SG 1024-1024)", "dni", (1024, 1024)),
)
LSTM_METHODS = ("bptt", "dni", "dni_aux")
LSTM_SHAPE = {"batch": 64, "T": 8, "hidden": 256, "d_in": 9, "d_out": 8}


@dataclass
class Case:
    """One benchmarked model: its minidni step, optionally a PyTorch step, and the baseline
    row (within the same model family) that its cost is compared to."""

    label: str
    samples: int  # examples per step (LSTM: sequences x time steps)
    step: Step
    torch_step: Step | None = None
    baseline: str | None = None
    bound_step: Step | None = None  # the step's matmuls alone (set by bench)
    matmuls: list[tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    times: dict[str, list[float]] = field(default_factory=dict)

    def median(self, which: str) -> float | None:
        return statistics.median(self.times[which]) if self.times.get(which) else None


# ------------------------------------------------------------------ threads and timing


def blas_threads() -> int | None:
    """Threads of NumPy's OpenBLAS (read from the loaded library), or None if unknown."""
    if backend.get_backend() != "numpy":
        return None
    for lib in _openblas_libs():
        for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads"):
            if hasattr(lib, name):
                return int(getattr(lib, name)())
    return None


def set_blas_threads(n: int) -> bool:
    """Set NumPy's OpenBLAS thread count; False where the library could not be found."""
    for lib in _openblas_libs():
        for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads"):
            if hasattr(lib, name):
                getattr(lib, name)(n)
                return True
    return False


def _openblas_libs() -> list[ctypes.CDLL]:
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:  # not Linux: thread counts are reported as unknown
        return []
    return [ctypes.CDLL(p) for p in sorted(paths)]


def _sync() -> None:
    """Wait for the GPU, so that a step's time includes its kernels."""
    if backend.get_backend() == "cupy":
        import cupy

        cupy.cuda.Device().synchronize()


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_steps(
    step: Step, steps: int, sync: Callable[[], None] = _sync, clock: str = "wall"
) -> float:
    """Mean milliseconds per call of ``step()`` over ``steps`` calls.

    ``clock="cpu"`` counts this process's CPU time (all its threads) instead of wall time:
    on a machine shared with other jobs it is not inflated by time spent descheduled, so
    with one thread (``--threads 1``) it measures the work of a step robustly.
    """
    now = CLOCKS[clock]
    sync()
    start = now()
    for _ in range(steps):
        step()
    sync()
    return 1e3 * (now() - start) / steps


def record_matmuls(step: Step) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
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


def matmul_replay(shapes: Sequence[tuple[tuple[int, ...], tuple[int, ...]]]) -> Step:
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


# ------------------------------------------------------------------ the models


def mlp_sizes(depth: int) -> list[int]:
    """``[784, 256 x depth, 10]``: the paper's MNIST MLP with ``depth`` hidden layers."""
    return [784, *[256] * depth, 10]


def mlp_cases(batch: int, depths: Sequence[int], torch: Any = None) -> list[Case]:
    rng = backend.RNG(0)
    x = rng.normal((batch, 784))
    labels_np = rng.np.integers(0, 10, size=batch)
    labels = backend.asarray(labels_np)
    cases = []
    for depth in depths:
        sizes = mlp_sizes(depth)
        bprop = None
        for name, method, hidden in MLP_METHODS:
            net = build_mlp(method, sizes, rng, sg_hidden=hidden)
            label = f"mlp {depth}x256 {name}"
            case = Case(label, batch, lambda net=net: net.step(x, labels), baseline=bprop)
            if method == "bprop":
                bprop = label
                if torch is not None:
                    case.torch_step = _torch_mlp_step(torch, sizes, x, labels_np)
            cases.append(case)
    return cases


def lstm_cases(torch: Any = None) -> list[Case]:
    s = LSTM_SHAPE
    rng = backend.RNG(0)
    b, T, h = s["batch"], s["T"], s["hidden"]
    x = rng.normal((b, T, s["d_in"]))
    y_np = rng.np.integers(0, 2, size=(b, T, s["d_out"])).astype("float32")
    y = backend.asarray(y_np)
    cases = []
    for method in LSTM_METHODS:
        model = TBPTT(s["d_in"], h, s["d_out"], rng, T=T, method=method)
        model.reset(b)
        label = f"lstm {h} {method}"
        # Segments are not ``last``, so DNI's SG is always used; the state carries over.
        case = Case(label, b * T, lambda m=model: m.segment(x, y))
        if method == "bptt":
            if torch is not None:
                case.torch_step = _torch_lstm_step(torch, x, y_np)
        else:
            case.baseline = f"lstm {h} bptt"
        cases.append(case)
    return cases


def _torch_device(torch: Any) -> str:
    return "cuda" if backend.get_backend() == "cupy" and torch.cuda.is_available() else "cpu"


def _torch_mlp_step(torch: Any, sizes: Sequence[int], x: Any, labels: Any) -> Step:
    """The same MLP in PyTorch: Linear (no bias) + BatchNorm1d + ReLU per hidden layer,
    a Linear output, softmax cross-entropy, one Adam (lr 1e-3) over all parameters."""
    nn, dev = torch.nn, _torch_device(torch)
    layers: list[Any] = []
    for d_in, d_out in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(d_in, d_out, bias=False), nn.BatchNorm1d(d_out), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1])).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tx = torch.from_numpy(backend.to_numpy(x)).to(dev)
    ty = torch.from_numpy(labels).to(dev)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(tx), ty)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def _torch_lstm_step(torch: Any, x: Any, y: Any) -> Step:
    """The same truncated-BPTT segment in PyTorch: ``nn.LSTM`` + a per-step Linear readout,
    BCE with logits summed over steps and bits and averaged over the batch, one Adam; the
    state is carried (detached) from one segment to the next."""
    s, nn, dev = LSTM_SHAPE, torch.nn, _torch_device(torch)
    core = nn.LSTM(s["d_in"], s["hidden"], batch_first=True).to(dev)
    readout = nn.Linear(s["hidden"], s["d_out"]).to(dev)
    opt = torch.optim.Adam([*core.parameters(), *readout.parameters()], lr=1e-3)
    tx = torch.from_numpy(backend.to_numpy(x)).to(dev)
    ty = torch.from_numpy(y).to(dev)
    zeros = torch.zeros(1, s["batch"], s["hidden"], device=dev)
    state = [(zeros, zeros.clone())]

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        hs, (h, c) = core(tx, state[0])
        logits = readout(hs)  # (B, T, D_out)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        loss = bce(logits, ty, reduction="sum") / s["batch"]
        loss.backward()
        opt.step()
        state[0] = (h.detach(), c.detach())
        return loss.item()

    return step


def import_torch() -> Any:
    """PyTorch, or a one-line error saying how to install it (an optional dependency)."""
    try:
        import torch
    except ImportError as e:
        raise backend.BackendError(
            "--compare torch needs PyTorch: pip install 'minidni[bench]' "
            "(CPU wheels: --index-url https://download.pytorch.org/whl/cpu)"
        ) from e
    return torch


# ------------------------------------------------------------------ the benchmark


def bench(
    batch: int = 256,
    steps: int = 40,
    rounds: int = 3,
    warmup: int = 5,
    compare: str | None = None,
    depths: Sequence[int] = MLP_DEPTHS,
    lstm: bool = True,
    threads: int | None = None,
    clock: str = "wall",
) -> list[Case]:
    """Time every case (module docstring), print the table and return the cases with
    their per-round times (``case.times['minidni' | 'bound' | 'torch']``, ms per step)."""
    torch = import_torch() if compare == "torch" else None
    if threads is not None:
        set_blas_threads(threads)
    if torch is not None:
        # PyTorch gets as many threads as NumPy's BLAS: the comparison is like for like.
        torch.set_num_threads(threads or blas_threads() or torch.get_num_threads())
    cases = mlp_cases(batch, depths, torch) + (lstm_cases(torch) if lstm else [])
    sync_torch = _torch_sync(torch)
    for case in cases:
        for _ in range(warmup):
            case.step()
            if case.torch_step is not None:
                case.torch_step()
        case.matmuls = record_matmuls(case.step)
        case.bound_step = matmul_replay(case.matmuls)
        case.bound_step()
    for _ in range(rounds):
        for case in cases:
            ms = time_steps(case.step, steps, clock=clock)
            case.times.setdefault("minidni", []).append(ms)
            ms = time_steps(case.bound_step, steps, clock=clock)
            case.times.setdefault("bound", []).append(ms)
            if case.torch_step is not None:
                t = time_steps(case.torch_step, steps, sync_torch, clock)
                case.times.setdefault("torch", []).append(t)
    print_table(cases, batch, steps, rounds, warmup, torch, clock)
    return cases


def _torch_sync(torch: Any) -> Callable[[], None]:
    if torch is not None and _torch_device(torch) == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def print_table(
    cases: Sequence[Case],
    batch: int,
    steps: int,
    rounds: int,
    warmup: int,
    torch: Any,
    clock: str = "wall",
) -> None:
    """One row per case: ms per step, samples/s, PyTorch's ms and the ratio, the matmul
    bound (ms, GFLOP/s) and the fraction of it reached, the cost relative to the baseline."""
    threads = blas_threads()
    print(
        f"backend {backend.get_backend()}, float32, BLAS threads "
        f"{'unknown' if threads is None else threads}"
        + (
            ""
            if torch is None
            else f", PyTorch {torch.__version__} threads {torch.get_num_threads()}"
        )
    )
    print(f"MLP batch {batch}; LSTM {LSTM_SHAPE}")
    print(
        f"{rounds} interleaved rounds of {steps} steps after {warmup} warm-up; medians of "
        f"rounds; {clock} clock; load average {os.getloadavg()[0]:.2f}"
    )
    print("ratio = PyTorch ms / minidni ms (> 1: minidni is faster); bound = the step's matmuls")
    head = f"{'model':<30}{'ms':>8}{'samples/s':>11}{'torch ms':>10}{'ratio':>8}"
    print(head + f"{'bound ms':>10}{'GFLOP/s':>9}{'of bound':>10}  vs baseline")
    by_label = {c.label: c for c in cases}
    for c in cases:
        ms, bound = c.median("minidni"), c.median("bound")
        t = c.median("torch")
        torch_cols = f"{'-':>10}{'-':>8}" if t is None else f"{t:>10.2f}{t / ms:>7.2f}x"
        gflops = matmul_flops(c.matmuls) / (bound * 1e6)
        rel = ""
        if c.baseline is not None:
            rel = f"{ms / by_label[c.baseline].median('minidni'):.2f}x {c.baseline}"
        print(
            f"{c.label:<30}{ms:>8.2f}{c.samples * 1e3 / ms:>11.0f}{torch_cols}"
            f"{bound:>10.2f}{gflops:>9.0f}{bound / ms:>9.0%}  {rel}"
        )


# ------------------------------------------------------------------ memory


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB (Linux: /proc; peak from
    getrusage)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    current = peak
    try:
        with open("/proc/self/statm") as f:
            current = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        pass  # no /proc: report the peak for both
    return current, peak


def memory(steps: int = 1000, batch: int = 256, every: int | None = None) -> dict[str, list]:
    """Train the 3-hidden-layer cDNI MLP (batch ``batch``) and the DNI + Aux LSTM for
    ``steps`` steps each; print and return (step, current MiB, peak MiB) at step 1 and
    every ``every`` steps (default steps / 10).

    Flat means: neither the current nor the peak resident memory grows with the step count
    once the first steps have allocated the working set.
    """
    every = every or max(steps // 10, 1)
    rng, s = backend.RNG(0), LSTM_SHAPE
    x, labels = rng.normal((batch, 784)), backend.asarray(rng.np.integers(0, 10, size=batch))
    net = build_mlp("cdni", mlp_sizes(3), rng)
    xs = rng.normal((s["batch"], s["T"], s["d_in"]))
    ys = backend.asarray(rng.np.integers(0, 2, size=(s["batch"], s["T"], s["d_out"])))
    ys = backend.asarray(backend.to_numpy(ys), dtype=backend.dtype())
    lstm = TBPTT(s["d_in"], s["hidden"], s["d_out"], rng, T=s["T"], method="dni_aux")
    lstm.reset(s["batch"])
    models = {
        "mlp 3x256 cdni (linear SG)": lambda: net.step(x, labels),
        f"lstm {s['hidden']} dni_aux": lambda: lstm.segment(xs, ys),
    }
    result = {}
    for label, step in models.items():
        rows = []
        for i in range(1, steps + 1):
            step()
            if i % every == 0 or i == 1:
                rows.append((i, *rss_mb()))
        result[label] = rows
        print(f"{label}: resident memory over {steps} steps (MiB)")
        print(f"{'step':>8}{'current':>10}{'peak':>10}")
        for i, cur, peak in rows:
            print(f"{i:>8}{cur:>10.1f}{peak:>10.1f}")
    return result


def bench_cnn(
    batch: int = 64,
    steps: int = 20,
    channels: Sequence[int] | None = None,
    methods: Sequence[str] = ("bprop", "cdni", "dni"),
) -> dict[str, tuple[float, float]]:
    """Median ms per training step of the MNIST CNN of ``minidni reproduce ff-cnn``
    (its quick profile's net and SG models; ``channels`` overrides the conv widths),
    float32: wall-clock time and this process's CPU time (``time.process_time``).

    The methods' steps are *interleaved* (one step of each in turn), so that a load that
    changes over time (other jobs on a shared machine) affects them alike and their
    ratios stay meaningful; on a loaded machine the CPU time is the better measure of the
    work a step does (it excludes the time spent waiting for a core). Returns ``{method:
    (wall ms, cpu ms)}`` and prints the ratios to the first method.
    """
    from .cnn import build_cnn
    from .experiments.ff_cnn import PROFILES, sg_hidden

    quick = PROFILES["quick"]
    channels = list(channels or quick["channels"]["mnist"])
    rng = backend.RNG(0)
    x = rng.normal((batch, 1, 28, 28))
    y = backend.asarray(rng.np.integers(0, 10, size=batch))
    nets = {
        m: build_cnn(
            m,
            (1, 28, 28),
            channels,
            rng,
            sg_hidden=tuple(sg_hidden(quick, "mnist", m)),
            sg_k=quick["sg_k"],
        )
        for m in methods
    }
    for net in nets.values():  # warm-up
        net.step(x, y)
    wall: dict[str, list[float]] = {m: [] for m in methods}
    cpu: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(steps):
        for m, net in nets.items():
            _sync()
            start, start_cpu = time.perf_counter(), time.process_time()
            net.step(x, y)
            _sync()
            wall[m].append(1e3 * (time.perf_counter() - start))
            cpu[m].append(1e3 * (time.process_time() - start_cpu))
    print(
        f"backend {backend.get_backend()}, float32, batch {batch}, CNN conv {channels}, "
        f"SG hidden {sg_hidden(quick, 'mnist', 'cdni')} ({quick['sg_k']}x{quick['sg_k']})"
    )
    result = {m: (statistics.median(wall[m]), statistics.median(cpu[m])) for m in methods}
    first = methods[0]
    for m, (w, c) in result.items():
        ratio = (
            ""
            if m == first
            else f"  ({w / result[first][0]:.2f} / {c / result[first][1]:.2f} x {first})"
        )
        print(f"cnn {m:<8}{w:9.1f} ms/step wall {c:9.1f} ms/step CPU{ratio}")
    return result
