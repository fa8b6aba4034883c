"""Regenerate every figure in this folder: ``python figures/make_figures.py [--run quick]``.

The same as ``minidni figures --results results --out figures [--run PROFILE]``: with
``--run`` the experiments are first run with that profile (writing ``results/*.json``);
without it the figures are drawn from the results JSON already in ``results/``. The
plotting code itself lives in :mod:`minidni.plots` (one module per experiment family).
"""

import sys
from pathlib import Path

from minidni.tools.cli import main

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    args = ["figures", "--results", str(HERE.parent / "results"), "--out", str(HERE)]
    sys.exit(main(args + sys.argv[1:]))
