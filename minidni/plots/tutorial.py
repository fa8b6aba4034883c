"""``show(fig, name)``: the tutorials' figures, inline in a notebook, else saved to a file.

Run as a notebook (an IPython kernel), a figure appears below its cell; run as a script,
it is written to ``$MINIDNI_TUTORIAL_FIGURES/<name>.png`` (default ``tutorials/figures/``)
and the path is printed. A chapter shows a figure beside each idea it teaches, each named
``NN_what`` after its chapter ``NN`` (``03_sg_quality``), so that the figures of one
chapter sort together.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "tutorials" / "figures"


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where figures display inline)."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def show(fig: Any, name: str) -> Path | None:
    """Display ``fig`` inline (notebook) or save it as ``<name>.png`` (script); returns the
    path written, or None when shown inline."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    if in_notebook():
        plt.show()
        return None
    out = Path(os.environ.get("MINIDNI_TUTORIAL_FIGURES", DEFAULT_DIR))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"figure saved to {path}")
    return path
