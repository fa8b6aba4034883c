"""The minidni command (also: python -m minidni).

Train and compare networks with synthetic gradients (Decoupled Neural Interfaces,
Jaderberg et al. 2017), reproduce the paper's experiments and draw their figures.

Every argument and every ``--set`` value is checked before any work starts; a bad one
ends the command with one line on stderr and exit status 2 (:class:`Parser`).

Commands: demo (MNIST MLP, backprop and every-layer cDNI side by side), gradcheck
(finite-difference check of every layer and loss), reproduce NAME (a paper experiment),
figures (draw the figures from results files), bench (milliseconds per training step,
optionally beside PyTorch, or resident memory over many steps; --cnn: the CNN), async
(under mpiexec -n K: one module per MPI rank, really concurrent).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from . import backend


def _demo(args: argparse.Namespace) -> int:
    from .demo import demo

    demo(epochs=args.epochs, methods=args.methods, seed=args.seed)
    return 0


def _gradcheck(args: argparse.Namespace) -> int:
    from .gradcheck import standard_cases

    print(f"backend {backend.get_backend()}, float64, tolerance {args.tol:g}")
    print(f"{'layer / loss':<28}{'max relative error':>20}")
    worst = 0.0
    with backend.use_dtype("float64"):
        for name, check in standard_cases(backend.RNG(args.seed)):
            err = check()
            worst = max(worst, err)
            flag = "" if err <= args.tol else "   FAIL"
            print(f"{name:<28}{err:>20.2e}{flag}")
    print(f"worst {worst:.2e}: {'ok' if worst <= args.tol else 'FAILED'}")
    return 0 if worst <= args.tol else 1


def _reproduce(args: argparse.Namespace) -> int:
    from . import experiments

    try:  # a typo in a setting, or an --out that cannot be written, fails before any run
        overrides = dict(_setting(item) for item in args.set)
        experiments.configure(args.name, args.profile, overrides)
        _writable_folder(Path(args.out), "--out")
    except ValueError as e:
        return _fail(e)
    experiments.run(args.name, args.profile, Path(args.out), overrides=overrides)
    return 0


def _writable_folder(path: Path, option: str) -> None:
    """Create ``path`` if needed; a ValueError naming ``option`` if it cannot be a folder."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{option}: cannot use {str(path)!r} as a folder ({e.strerror})") from e
    if not os.access(path, os.W_OK):
        raise ValueError(f"{option}: the folder {str(path)!r} is not writable")


def _setting(item: str) -> tuple[str, object]:
    """``KEY=VALUE`` from ``--set``; VALUE is JSON (``3000``, ``[3, 6]``, ``{"dni": [1024]}``)
    or else a plain string."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _figures(args: argparse.Namespace) -> int:
    from . import experiments
    from .plots import make_all

    if args.run:  # regenerate from scratch: run the experiments first
        names = args.only or list(experiments.EXPERIMENTS)
        for name in names:
            experiments.run(name, args.run, Path(args.results))
    for path in make_all(Path(args.results), Path(args.out)):
        print(path)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import bench
    from .bench.memory import ALL_MODELS, CNN_MODELS, DEFAULT_MODELS, memory

    if args.all and not args.memory:
        return _fail(ValueError("bench --all goes with --memory STEPS (every model's memory)"))
    if args.memory:
        if args.threads is not None:
            os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)  # the models' processes
        models = ALL_MODELS if args.all else CNN_MODELS if args.cnn else DEFAULT_MODELS
        memory(steps=args.memory, batch=args.batch, models=models)
        return 0
    bench(
        batch=args.batch,
        steps=args.steps,
        rounds=args.rounds,
        warmup=args.warmup,
        compare=args.compare,
        depths=args.depths,
        lstm=not args.no_lstm,
        threads=args.threads,
        clock=args.clock,
        cnn=args.cnn,
    )
    return 0


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``minidni demo: error: ...`` and exit status 2,
    without the usage block (``--help`` shows it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _whole(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expects a whole number >= {minimum}, got {text!r}")
        return value

    return parse


def _wholes(text: str) -> list[int]:
    """An argparse type: comma-separated whole numbers >= 1, e.g. ``3,6``."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expects whole numbers >= 1 like 3,6, got {text!r}")
    return values


def _non_negative(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expects a number >= 0, got {text!r}")
    return value


def _names(valid: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated list of names out of ``valid``."""

    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        bad = [n for n in names if n not in valid]
        if not names or bad:
            raise argparse.ArgumentTypeError(
                f"expects comma-separated names out of {', '.join(valid)}, got {text!r}"
            )
        return names

    return parse


def _async(args: argparse.Namespace) -> int:
    from .experiments import parallel

    comm = parallel.communicator()
    try:
        overrides = dict(_setting(item) for item in args.set)
        if args.staleness is not None:
            overrides["staleness"] = args.staleness
        if args.fault:
            kind, rank, step = args.fault.split(":")
            overrides["fault"] = [kind, int(rank), int(step)]
        parallel.configure(parallel.PROFILES, args.profile, {**overrides, "fault": None})
        modes = args.mode.split(",") if args.mode else list(parallel.pipeline.MODES)
        parallel.check_modes(modes)
    except ValueError as e:
        return _fail(e)
    try:
        parallel.run(args.profile, Path(args.out), modes, comm, overrides, args.append)
    except Exception as e:  # one rank's error must end every rank, not leave them waiting
        if comm is None or comm.Get_size() == 1:
            raise
        print(f"minidni async: rank {comm.Get_rank()}: error: {e}", file=sys.stderr, flush=True)
        # mpiexec forwards a rank's output through a pipe that Abort tears down at once;
        # without a pause the line above is sometimes lost (about 1 run in 7 here).
        time.sleep(1.0)
        comm.Abort(2)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``minidni`` console script."""
    from .decoupled import METHODS
    from .experiments import EXPERIMENTS, PROFILE_NAMES

    parser = Parser(
        prog="minidni",
        description="Synthetic gradients (Decoupled Neural Interfaces, Jaderberg et al. 2017) "
        "from scratch: train, reproduce the paper's experiments, draw the figures.",
        epilog="Run 'minidni COMMAND --help' for the options of one command.",
    )
    parser.add_argument(
        "--backend",
        choices=backend.BACKENDS,
        help="where the arrays live: numpy (CPU, the default), cupy (NVIDIA GPU) or "
        "array_api_strict (the reference namespace the tests use); default: "
        "$MINIDNI_BACKEND, else numpy",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    experiments = ", ".join(EXPERIMENTS)

    p = sub.add_parser(
        "demo",
        help="train an MNIST network with backprop and with synthetic gradients, side by side",
        description="Train the paper's MNIST network (784-256-256-10) once per method and "
        "print the test error after every epoch. bprop is ordinary backpropagation; with "
        "dni and cdni every layer learns only from a synthetic gradient (cdni: one that "
        "also sees the label).",
    )
    p.add_argument("--epochs", type=_whole(1), default=5, help="passes over the training set")
    p.add_argument(
        "--methods",
        type=_names(METHODS),
        default=["bprop", "cdni"],
        help=f"which methods, comma-separated, out of {', '.join(METHODS)} (default: bprop,cdni)",
    )
    p.add_argument("--seed", type=_whole(0), default=0, help="random seed (default 0)")
    p.set_defaults(func=_demo)

    p = sub.add_parser(
        "gradcheck",
        help="check every layer's hand-written gradient against finite differences",
        description="Compare every layer's and loss's hand-written backward pass with "
        "finite differences in float64; exit status 1 if any error is above the tolerance.",
    )
    p.add_argument("--tol", type=_non_negative, default=1e-6, help="largest relative error allowed")
    p.add_argument("--seed", type=_whole(0), default=0, help="random seed (default 0)")
    p.set_defaults(func=_gradcheck)

    p = sub.add_parser(
        "reproduce",
        help="run one of the paper's experiments and write its results file",
        description=f"Run one of the paper's experiments ({experiments}) and write "
        "OUT/NAME.json. Each finished run is saved at once: if the command is stopped, "
        "running it again with the same --out skips the runs already done.",
    )
    p.add_argument("name", choices=list(EXPERIMENTS), help=f"which experiment: {experiments}")
    p.add_argument(
        "--profile",
        choices=PROFILE_NAMES,
        default="quick",
        help="how big: smoke (seconds, for tests), quick (minutes on a laptop, the "
        "default), long (rnn-copy only: hours on a CPU), full (the paper's scale, for a GPU)",
    )
    p.add_argument(
        "--out", default="results", help="folder for the results file (default: results)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one setting of the profile; VALUE is JSON, e.g. --set steps=20000 "
        "--set depths=[3] --set 'lr={\"dni\": 0.0001}' (a per-method setting). "
        "Repeat for several; the results file records them.",
    )
    p.set_defaults(func=_reproduce)

    p = sub.add_parser(
        "figures",
        help="draw the figures from the results files",
        description="Draw every figure whose results file is in --results, into --out.",
    )
    p.add_argument(
        "--results", default="results", help="folder of results files (default: results)"
    )
    p.add_argument("--out", default="figures", help="folder for the PNG files (default: figures)")
    p.add_argument(
        "--run",
        choices=[p for p in PROFILE_NAMES if p != "long"],
        help="first run the experiments with this profile (e.g. --run quick redoes everything)",
    )
    p.add_argument(
        "--only",
        type=_names(list(EXPERIMENTS)),
        help=f"with --run: which experiments, comma-separated, out of {experiments}",
    )
    p.set_defaults(func=_figures)

    p = sub.add_parser(
        "bench",
        help="time one training step of each model (optionally beside PyTorch)",
        description="Milliseconds per training step of the MNIST network (backprop, cDNI, "
        "DNI) and of the LSTM (BPTT, DNI, DNI + Aux), or with --cnn of the ff-cnn CNN "
        "(backprop, cDNI, DNI), on the current backend; with --compare torch, the same "
        "backprop / BPTT models in PyTorch beside them.",
    )
    p.add_argument("--compare", choices=["torch"], help="also time the same models in PyTorch")
    p.add_argument("--batch", type=_whole(1), help="batch size (default: 256 MLP, 64 CNN)")
    p.add_argument("--steps", type=_whole(1), default=40, help="timed steps per round")
    p.add_argument("--rounds", type=_whole(1), default=3, help="interleaved rounds (median)")
    p.add_argument("--warmup", type=_whole(0), default=5, help="untimed steps per model first")
    p.add_argument(
        "--depths", type=_wholes, default=[3, 6], help="MLP hidden-layer counts, e.g. 3,6"
    )
    p.add_argument("--no-lstm", action="store_true", help="skip the LSTM rows")
    p.add_argument("--threads", type=_whole(1), help="BLAS (and PyTorch) threads")
    p.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: process CPU time, robust on a shared machine (use with --threads 1)",
    )
    p.add_argument(
        "--memory",
        type=_whole(1),
        metavar="STEPS",
        help="instead: resident memory over STEPS (the cDNI MLP and the DNI + Aux LSTM; "
        "with --cnn the CNN's three methods; with --all every model)",
    )
    p.add_argument(
        "--cnn", action="store_true", help="the ff-cnn CNN (Bprop, cDNI, DNI) instead of MLP, LSTM"
    )
    p.add_argument("--all", action="store_true", help="with --memory: every benchmarked model")
    p.set_defaults(func=_bench)

    p = sub.add_parser("async", help="one module per MPI rank (run under mpiexec -n K)")
    p.add_argument("--profile", choices=("smoke", "quick"), default="quick")
    p.add_argument("--out", default="results")
    p.add_argument("--mode", help="comma-separated: locked, dni, cdni, unlock (default: all)")
    p.add_argument(
        "--staleness",
        type=_whole(0),
        help="deterministic mode: every gradient is used exactly this many steps after its "
        "forward pass (default: free running, used when it arrives)",
    )
    p.add_argument("--append", action="store_true", help="add the runs to DIR/async.json")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--fault", help=argparse.SUPPRESS)  # KIND:RANK:STEP, for the tests
    p.set_defaults(func=_async)

    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0), or a bad argument (2, after one line on stderr)
        return int(e.code or 0)
    try:
        backend.set_backend(args.backend or os.environ.get("MINIDNI_BACKEND", "numpy"))
    except (ValueError, backend.BackendError) as e:
        return _fail(e)
    try:
        return args.func(args)
    except _user_errors() as e:
        return _fail(e)
    except KeyboardInterrupt:  # the experiment runner has saved what finished, and said so
        print("minidni: interrupted", file=sys.stderr)
        return 130


def _fail(error: Exception) -> int:
    """A missing GPU or data file, or a bad name: one line, no traceback, exit status 2."""
    print(f"minidni: error: {error}", file=sys.stderr)
    return 2


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors caused by the environment rather than a bug: shown as one line."""
    from .data import DataError

    return (backend.BackendError, DataError)


if __name__ == "__main__":
    sys.exit(main())
