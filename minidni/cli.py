"""The ``minidni`` command (also ``python -m minidni``).

minidni demo                      MNIST MLP: backprop and every-layer cDNI side by side
minidni gradcheck                 finite-difference check of every layer and loss
minidni reproduce NAME --profile smoke|quick|full --out DIR [--set KEY=VALUE ...]
minidni figures [--results DIR] [--out figures/]
minidni bench                     milliseconds per training step
mpiexec -n K minidni async --profile smoke|quick --out DIR [--mode MODE]
                                  one module per MPI rank, really concurrent
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import backend


def _demo(args: argparse.Namespace) -> int:
    from .demo import demo

    demo(epochs=args.epochs, methods=args.methods.split(","), seed=args.seed)
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

    try:  # a typo in a setting is reported before anything runs
        overrides = dict(_setting(item) for item in args.set)
        experiments.configure(args.name, args.profile, overrides)
    except ValueError as e:
        return _fail(e)
    experiments.run(args.name, args.profile, Path(args.out), overrides=overrides)
    return 0


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
        names = args.only.split(",") if args.only else list(experiments.EXPERIMENTS)
        for name in names:
            experiments.run(name, args.run, Path(args.results))
    for path in make_all(Path(args.results), Path(args.out)):
        print(path)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import bench

    bench(batch=args.batch, steps=args.steps)
    return 0


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
        comm.Abort(2)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``minidni`` console script."""
    from .experiments import EXPERIMENTS, PROFILE_NAMES

    parser = argparse.ArgumentParser(prog="minidni", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend", choices=backend.BACKENDS, help="array backend (default: $MINIDNI_BACKEND)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="train an MNIST MLP with backprop and with cDNI")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--methods", default="bprop,cdni", help="comma-separated: bprop, dni, cdni")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_demo)

    p = sub.add_parser("gradcheck", help="check every layer and loss by finite differences")
    p.add_argument("--tol", type=float, default=1e-6)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_gradcheck)

    p = sub.add_parser("reproduce", help="run one of the paper's experiments")
    p.add_argument("name", choices=list(EXPERIMENTS))
    p.add_argument("--profile", choices=PROFILE_NAMES, default="quick")
    p.add_argument("--out", default="results")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a profile setting (JSON value), e.g. --set steps=20000 --set depths=[3]",
    )
    p.set_defaults(func=_reproduce)

    p = sub.add_parser("figures", help="turn results JSON into the figures")
    p.add_argument("--results", default="results")
    p.add_argument("--out", default="figures")
    p.add_argument("--run", choices=PROFILE_NAMES, help="first run the experiments")
    p.add_argument("--only", help="with --run: comma-separated experiment names")
    p.set_defaults(func=_figures)

    p = sub.add_parser("bench", help="milliseconds per training step")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=50)
    p.set_defaults(func=_bench)

    p = sub.add_parser("async", help="one module per MPI rank (run under mpiexec -n K)")
    p.add_argument("--profile", choices=("smoke", "quick"), default="quick")
    p.add_argument("--out", default="results")
    p.add_argument("--mode", help="comma-separated: locked, dni, cdni, unlock (default: all)")
    p.add_argument(
        "--staleness",
        type=int,
        help="deterministic mode: every gradient is used exactly this many steps after its "
        "forward pass (default: free running, used when it arrives)",
    )
    p.add_argument("--append", action="store_true", help="add the runs to DIR/async.json")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--fault", help=argparse.SUPPRESS)  # KIND:RANK:STEP, for the tests
    p.set_defaults(func=_async)

    args = parser.parse_args(argv)
    try:
        backend.set_backend(args.backend or os.environ.get("MINIDNI_BACKEND", "numpy"))
    except (ValueError, backend.BackendError) as e:
        return _fail(e)
    try:
        return args.func(args)
    except _user_errors() as e:
        return _fail(e)


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
