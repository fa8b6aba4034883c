"""Data sets and task generators, as host NumPy arrays.

- MNIST (:func:`load_mnist`, :func:`mnist_datasets`, :func:`mnist_batches`,
  :func:`standardize`);
- CIFAR-10 (:func:`load_cifar10`, :func:`has_cifar10`, :func:`parse_cifar10_batch`);
- character-level Penn Treebank (:func:`load_ptb_chars`, :data:`PTB_VOCAB`,
  :func:`ptb_batches`, :func:`has_split`);
- the Copy and Repeat Copy tasks (:func:`copy_batch`, :func:`repeat_copy_batch`,
  :func:`bits_error`) and their curriculum (:class:`Curriculum`).

Files are found in ``$MINIDNI_DATA_DIR`` or the per-user cache, downloaded when
missing, and always checksum-verified (:mod:`minidni.data.cache`). The training code
moves arrays to the device with :func:`minidni.backend.asarray`.
"""

from .cache import DataError, cache_dir, data_dirs, fetch, fetch_bytes, locate
from .cifar10 import has_cifar10, load_cifar10
from .cifar10 import parse_batch as parse_cifar10_batch
from .copy_tasks import bits_error, copy_batch, repeat_copy_batch
from .curriculum import Curriculum
from .mnist import load_mnist, mnist_batches, mnist_datasets, parse_idx, standardize
from .ptb import PTB_VOCAB, Vocabulary, has_split, load_ptb_chars, parse_ptb_chars, ptb_batches

__all__ = [
    "Curriculum",
    "PTB_VOCAB",
    "DataError",
    "Vocabulary",
    "bits_error",
    "cache_dir",
    "copy_batch",
    "data_dirs",
    "fetch",
    "fetch_bytes",
    "has_cifar10",
    "has_split",
    "load_cifar10",
    "load_mnist",
    "load_ptb_chars",
    "locate",
    "mnist_batches",
    "mnist_datasets",
    "parse_cifar10_batch",
    "parse_idx",
    "parse_ptb_chars",
    "ptb_batches",
    "repeat_copy_batch",
    "standardize",
]
