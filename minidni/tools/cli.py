"""The minidni command (also: python -m minidni).

Train and compare networks with synthetic gradients (Decoupled Neural Interfaces,
Jaderberg et al. 2017), reproduce the paper's experiments and draw their figures.

Every argument and every ``--set`` value is checked before any work starts; a bad one
ends the command with one line on stderr and exit status 2 (:class:`Parser`).

Commands: demo (MNIST MLP, backprop and every-layer cDNI side by side), gradcheck
(finite-difference check of every layer and loss), reproduce NAME (a paper experiment),
figures (draw the figures from results files), bench (milliseconds per training step,
optionally beside PyTorch, or resident memory over many steps; --cnn: the CNN),
parallel (under mpiexec -n K: one module per MPI rank, really concurrent).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from .. import backend
from . import progress, threads


def _demo(args: argparse.Namespace) -> int:
    from .demo import demo

    demo(epochs=args.epochs, methods=args.methods, seed=args.seed)
    return 0


def _gradcheck(args: argparse.Namespace) -> int:
    from ..gradcheck import standard_cases

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
    from .. import experiments
    from ..experiments import preflight, results
    from ..experiments.settings import parse

    out = Path(args.out) if args.out is not None else experiments.default_out(args.profile)
    try:  # everything that can be wrong fails here, before any run
        overrides = parse(args.set)
        config = experiments.configure(args.name, args.profile, overrides)
        preflight.check(args.name, config)
        _writable_folder(out, "--out")
        results.check_target(out / f"{args.name}.json")
        preflight.fetch_data(args.name, config)  # a DataError: one line, exit 2 (main)
    except ValueError as e:
        return _fail(e)
    experiments.run(args.name, args.profile, out, overrides=overrides, blas_threads=args.threads)
    return 0


def _writable_folder(path: Path, option: str) -> None:
    """Create ``path`` if needed; a ValueError naming ``option`` if it cannot be a folder."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{option}: cannot use {str(path)!r} as a folder ({e.strerror})") from e
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{option}: the folder {str(path)!r} is not writable")


def _folder(text: str) -> str:
    """An argparse type: a folder name (not empty)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expects a folder name, got {text!r}")
    return text


FIGURE_NAMES = ("parallel",)  # figures of results that `minidni parallel` writes


def _figures(args: argparse.Namespace) -> int:
    from .. import experiments
    from ..experiments import results

    results_dir = experiments.default_out(args.run or "quick")
    if args.results:
        results_dir = Path(args.results)
    out = Path(args.out) if args.out else results_dir / "figures"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return _fail(ValueError("minidni figures needs matplotlib: pip install matplotlib"))
    if args.run:  # regenerate from scratch: check every experiment's settings, then run them
        names = args.only or list(experiments.EXPERIMENTS)
        try:
            if any(n in FIGURE_NAMES for n in names):
                raise ValueError(
                    "--only: parallel runs under MPI (mpiexec -n 2 minidni parallel), not with "
                    "--run; draw its figure without --run"
                )
            for name in names:
                experiments.check(name, experiments.configure(name, args.run))
            _writable_folder(results_dir, "--results")
            for name in names:
                results.check_target(results_dir / f"{name}.json")
        except ValueError as e:
            return _fail(e)
        for name in names:
            experiments.run(name, args.run, results_dir, blas_threads=args.threads)
    elif not results_dir.is_dir():
        found = sorted(str(p) for p in Path("results").glob("*") if p.is_dir())
        hint = f"; results folders here: {', '.join(found)}" if found else ""
        return _fail(ValueError(f"--results: there is no folder {str(results_dir)!r}{hint}"))
    try:
        _writable_folder(out, "--out")
    except ValueError as e:
        return _fail(e)
    from ..plots import make_all

    paths = make_all(results_dir, out, args.only)
    for path in paths:
        print(path)
    if not paths:
        print(f"minidni figures: no figure drawn from {results_dir}", file=sys.stderr)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from ..bench import bench
    from ..bench.memory import ALL_MODELS, CNN_MODELS, DEFAULT_MODELS, memory

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


def _parallel(args: argparse.Namespace) -> int:
    from ..data import DataError
    from ..experiments import parallel, preflight
    from ..experiments.settings import parse

    comm = parallel.communicator()
    ranks = 1 if comm is None else comm.Get_size()
    root = comm is None or comm.Get_rank() == 0
    out = Path(args.out) if args.out is not None else Path("results") / args.profile
    error = None
    try:  # every check before any work, on every rank
        overrides = parse(args.set)
        if args.staleness is not None:
            overrides["staleness"] = args.staleness
        config = parallel.configure(parallel.PROFILES, args.profile, overrides)
        modes = args.mode.split(",") if args.mode else list(parallel.pipeline.MODES)
        parallel.check_modes(modes)
        preflight.check("parallel", config)
        if ranks > 1 and ranks != len(config["layout"]):
            raise ValueError(
                f"{ranks} ranks for a layout of {len(config['layout'])} modules: start "
                f"mpiexec -n {len(config['layout'])}, or give a layout of {ranks} modules"
            )
        if root:
            _writable_folder(out, "--out")
            parallel.check_target(out, config, args.append)
        preflight.fetch_data("parallel", config)
    except (ValueError, DataError) as e:
        error = str(e)
    if ranks > 1:  # all ranks stop together, or none does
        error = next((e for e in comm.allgather(error) if e), None)
    if error is not None:
        return _fail(ValueError(error)) if root else 2
    try:
        parallel.run(args.profile, out, modes, comm, overrides, args.append)
    except Exception as e:  # one rank's error must end every rank, not leave them waiting
        if ranks == 1:
            raise
        print(f"minidni parallel: rank {comm.Get_rank()}: error: {e}", file=sys.stderr, flush=True)
        # mpiexec forwards a rank's output through a pipe that Abort tears down at once;
        # without a pause the line above is sometimes lost (about 1 run in 7 here).
        time.sleep(1.0)
        comm.Abort(2)
    return 0


PROFILE_HELP = (
    "how big: smoke (seconds; for the tests), quick (the default: up to about 30 minutes "
    "on a 2-core CPU), long (rnn-copy only: hours on a CPU), full (the paper's scale, for "
    "a GPU)"
)
THREADS_HELP = (
    "BLAS threads of every run (default: 1, or $MINIDNI_THREADS, $OMP_NUM_THREADS, ...). "
    "The count changes the last bits of the numbers, so it is recorded, and a resumed "
    "run must use the same"
)
EXIT_STATUS = (
    "Exit status: 0 done; 2 a bad argument, setting, file or environment variable (one "
    "line on stderr, before any work); 1 the work itself failed; 130 interrupted (Ctrl-C)."
)


def _parser() -> Parser:
    """The ``minidni`` command line: one subcommand per job, each with full help."""
    from .. import __version__
    from ..decoupled import METHODS
    from ..experiments import EXPERIMENTS, PROFILE_NAMES

    parser = Parser(
        prog="minidni",
        description="Synthetic gradients (Decoupled Neural Interfaces, Jaderberg et al. 2017) "
        "from scratch: train, reproduce the paper's experiments, draw the figures.",
        epilog="Run 'minidni COMMAND --help' for the options of one command. " + EXIT_STATUS,
    )
    parser.add_argument("--version", action="version", version=f"minidni {__version__}")
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
        "also sees the label). MNIST is read from $MINIDNI_DATA_DIR/mnist, else from the "
        "per-user cache (downloaded on first use).",
        epilog=EXIT_STATUS,
    )
    p.add_argument("--epochs", type=_whole(1), default=5, help="passes over the training set")
    p.add_argument(
        "--methods",
        type=_names(METHODS),
        default=["bprop", "cdni"],
        help=f"which methods, comma-separated, out of {', '.join(METHODS)} (default: bprop,cdni)",
    )
    p.add_argument("--seed", type=_whole(0), default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=_whole(1), help=THREADS_HELP)
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
        "OUT/NAME.json. Every setting is checked before any run starts. Each finished run "
        "is saved at once: if the command is stopped, running it again with the same "
        "--out skips the runs already done. A results file that the new results would "
        "not keep whole (other settings, profile, code or BLAS threads) is renamed to "
        "NAME.<time>.json beside it, never overwritten; a second command on the same --out "
        "waits for the first. Every experiment has the profiles smoke, quick and full; "
        "rnn-copy also long.",
        epilog=EXIT_STATUS,
    )
    p.add_argument("name", choices=list(EXPERIMENTS), help=f"which experiment: {experiments}")
    p.add_argument("--profile", choices=PROFILE_NAMES, default="quick", help=PROFILE_HELP)
    p.add_argument(
        "--out",
        type=_folder,
        help="folder for the results file (default: results/PROFILE, e.g. results/quick)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one setting of the profile; VALUE is JSON, e.g. --set steps=20000 "
        "--set depths=[3] --set 'lr={\"dni\": 0.0001}' (a per-method setting). "
        "Repeat for several settings (each once); the results file records them.",
    )
    p.add_argument("--threads", type=_whole(1), help=THREADS_HELP)
    p.set_defaults(func=_reproduce)

    p = sub.add_parser(
        "figures",
        help="draw the figures from the results files",
        description="Draw every figure whose results file is in --results, into --out. "
        "A results file that cannot be read is named and skipped; the other figures are "
        "drawn. A figure of an unfinished results file, or with diverged runs, says so "
        "on the figure. The committed figures of minidni (figures/) change only with "
        "--out figures.",
        epilog=EXIT_STATUS,
    )
    p.add_argument(
        "--results",
        type=_folder,
        help="folder of results files (default: results/PROFILE of --run, else results/quick)",
    )
    p.add_argument(
        "--out", type=_folder, help="folder for the PNG files (default: RESULTS/figures)"
    )
    p.add_argument(
        "--run",
        choices=[p for p in PROFILE_NAMES if p != "long"],
        help="first run the experiments with this profile, into --results (e.g. --run quick "
        "redoes everything; runs already in --results are kept)",
    )
    names = list(EXPERIMENTS) + list(FIGURE_NAMES)
    p.add_argument(
        "--only",
        type=_names(names),
        help=f"only these experiments' figures (and runs, with --run), comma-separated, out "
        f"of {', '.join(names)}",
    )
    p.add_argument("--threads", type=_whole(1), help="with --run: " + THREADS_HELP)
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

    p = sub.add_parser(
        "parallel",
        aliases=["async"],
        help="one module per process: run under mpiexec -n K (also: async)",
        description="Split an MNIST MLP into K modules, one per MPI rank, and train it with "
        "each mode in turn: bprop (backprop across ranks: every rank waits for the later "
        "ones), dni and cdni (each rank updates from a synthetic gradient at once, so the "
        "ranks work as a pipeline) and unlock (synthetic inputs as well). Writes "
        "OUT/parallel.json: steps per second, waiting times, staleness and the learning "
        "curve of every run. Start it as 'mpiexec -n K minidni parallel' (the extra mpi: "
        "pip install -e '.[mpi]'); each rank uses one BLAS thread unless $OMP_NUM_THREADS "
        "(or $MINIDNI_THREADS) asks for more. Without mpiexec each mode runs as its "
        "one-process simulation, the baseline to compare with. Every argument, setting, "
        "--out and --append target is checked on every rank before any work.",
        epilog=EXIT_STATUS,
    )
    p.add_argument(
        "--profile",
        choices=("smoke", "quick"),
        default="quick",
        help="smoke (a small net, seconds) or quick (784-480-64 | 64-544-544-10, 1000 steps; "
        "the default)",
    )
    p.add_argument(
        "--out",
        type=_folder,
        help="folder for parallel.json (default: results/PROFILE); an earlier parallel.json "
        "there is renamed to parallel.<time>.json unless --append",
    )
    p.add_argument(
        "--mode",
        help="which modes, comma-separated, out of bprop, dni, cdni, unlock (default: all)",
    )
    p.add_argument(
        "--staleness",
        type=_whole(0),
        help="deterministic mode: every gradient is used exactly this many steps after its "
        "forward pass (default: free running, used when it arrives)",
    )
    p.add_argument(
        "--append",
        action="store_true",
        help="add the runs to those already in OUT/parallel.json (same profile and settings)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one setting of the profile (VALUE is JSON), e.g. --set steps=200; "
        "repeat for several settings",
    )
    p.set_defaults(func=_parallel)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``minidni`` console script."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0), or a bad argument (2, after one line on stderr)
        return int(e.code or 0)
    try:  # the environment is input too: checked before any work
        backend.set_backend(args.backend or os.environ.get("MINIDNI_BACKEND", "numpy"))
        progress.check_environment()
        if args.command not in ("gradcheck", "bench"):  # the commands that read data
            from ..data import cache

            cache.check_environment()
        count = None  # bench sets its own threads (--threads)
        if args.command != "bench":
            count = threads.requested(getattr(args, "threads", None))
    except (ValueError, backend.BackendError) as e:
        return _fail(e)
    try:
        with threads.limit(count) if count is not None else contextlib.nullcontext():
            status = args.func(args)
        sys.stdout.flush()  # a broken pipe shows here, not in the interpreter's exit
        return status
    except _user_errors() as e:
        return _fail(e)
    except KeyboardInterrupt:  # the experiment runner has saved what finished, and said so
        print("minidni: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `minidni ... | head`: the reader is gone; what ran is saved
        _silence_stdout()
        return 141  # as a process ended by SIGPIPE
    except MemoryError:
        print("minidni: error: out of memory; lower the sizes of the run", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. the disk filled up while writing results
        print(f"minidni: error: {e}", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises nothing more."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _fail(error: Exception) -> int:
    """A missing GPU or data file, or a bad name: one line, no traceback, exit status 2."""
    print(f"minidni: error: {error}", file=sys.stderr)
    return 2


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors caused by the environment rather than a bug: shown as one line."""
    from ..data import DataError

    return (backend.BackendError, DataError)


if __name__ == "__main__":
    sys.exit(main())
