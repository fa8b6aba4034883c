"""minidni: Decoupled Neural Interfaces (synthetic gradients) from scratch.

Jaderberg et al., "Decoupled Neural Interfaces using Synthetic Gradients", ICML 2017
(arXiv:1608.05343); Czarnecki et al., "Understanding Synthetic Gradients and Decoupled
Neural Interfaces", ICML 2017 (arXiv:1703.00522).
"""

from . import backend
from .backend import RNG, get_backend, set_backend, use_backend, use_dtype

__version__ = "0.1.0"
__all__ = ["RNG", "backend", "get_backend", "set_backend", "use_backend", "use_dtype"]
