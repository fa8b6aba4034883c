"""Checks of a whole configuration before any work starts.

:mod:`.settings` checks each ``--set`` value on its own; this module checks what only the
settings together (and the machine) can say, so that a run that cannot work fails in a
second with one line rather than after minutes, or with a traceback from a worker:

- sizes that must fit each other: a batch no larger than the training examples it is
  drawn from, data subsets no larger than the data, multinet's step counts multiples of
  every window ``k^2``, a parallel layout whose modules join up, enough characters of
  PTB for one window;
- memory: a rough estimate of what the largest run needs (parameters with their
  gradients and Adam's two moments, the activations of a training batch and of an
  evaluation batch, the data), refused when it exceeds the machine's memory;
- data: the data files are found (or downloaded, once, here rather than by each
  worker) and verified, so a missing or damaged file is named at once.

:func:`check` raises :class:`~.settings.SettingError` (a ValueError) and
:func:`fetch_data` :class:`~minidni.data.DataError`.
"""

from __future__ import annotations

import os

from .settings import SettingError

SIZES = {"mnist": (60_000, 10_000), "cifar10": (50_000, 10_000)}  # (train, test) examples
BYTES = 4  # float32
MNIST_EXPERIMENTS = ("ff", "update-prob", "unlock", "ff-cnn", "multinet", "parallel")


def check(name: str, config: dict) -> None:
    """Every cross-setting and memory check of experiment ``name``'s ``config``."""
    for dataset in _datasets(name, config):
        _subsets(config, *SIZES[dataset], dataset)
    if name == "multinet":
        _multinet(config)
    if name == "parallel":
        _layout(config["layout"])
    if name == "rnn-copy" and config["budget"] < config["batch_size"]:
        raise SettingError(
            f"settings: budget {config['budget']} is less than one batch of batch_size "
            f"{config['batch_size']} sequences; raise budget or lower batch_size"
        )
    need, memory = memory_estimate(name, config), physical_memory()
    if memory and need > memory:
        raise SettingError(
            f"settings: the largest run of {name} would need about {_size(need)} of memory, "
            f"more than this machine's {_size(memory)}; lower the sizes (width, hidden, "
            "channels, batch_size, ...)"
        )


def _datasets(name: str, config: dict) -> list[str]:
    if name == "ff-cnn":
        return list(config["datasets"])
    return ["mnist"] if name in MNIST_EXPERIMENTS else []


def _subsets(config: dict, n_train: int, n_test: int, dataset: str) -> None:
    """Subsets within the data, a batch within the (subset of the) training set."""
    for key, n in (("train_subset", n_train), ("test_subset", n_test)):
        if config.get(key) and config[key] > n:
            raise SettingError(
                f"settings: {key} {config[key]} is more than the {n} examples of {dataset}'s "
                f"{key.split('_')[0]} split"
            )
    rows = config.get("train_subset") or n_train
    source = "train_subset" if config.get("train_subset") else dataset
    if config.get("batch_size", 0) > rows:
        raise SettingError(
            f"settings: batch_size {config['batch_size']} is larger than the {rows} training "
            f"examples it is drawn from ({source})"
        )


def _multinet(config: dict) -> None:
    for k in config["ks"]:
        for key in ("steps", "log_every", "eval_steps"):
            if config[key] % (k * k):
                raise SettingError(
                    f"settings: {key} {config[key]} must be a multiple of k^2 = {k * k} "
                    f"for every k in ks {config['ks']}"
                )


def _layout(layout: list) -> None:
    sizes = [s for module in layout for s in (module if isinstance(module, list) else [module])]
    if (
        not layout
        or not all(isinstance(m, list) and len(m) >= 2 for m in layout)
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes)
    ):
        raise SettingError(
            "--set layout: expects a list of modules, each a list of at least two sizes >= 1, "
            "e.g. [[784, 64, 32], [32, 64, 10]]"
        )
    if layout[0][0] != 784 or layout[-1][-1] != 10:
        raise SettingError(
            f"--set layout: the first module reads the 784 pixels and the last gives 10 "
            f"classes; got {layout[0][0]} ... {layout[-1][-1]}"
        )
    for a, b in zip(layout[:-1], layout[1:]):
        if a[-1] != b[0]:
            raise SettingError(f"--set layout: a module's output {a[-1]} must be the next's input")


def check_ptb(config: dict, train_chars: int, test_chars: int) -> None:
    """rnn-ptb: the split trained on must hold one window of every T for the batch, the
    test characters one evaluation window."""
    batch, longest = config["batch_size"], max(config["truncations"])
    if train_chars // batch < longest + 1:
        raise SettingError(
            f"settings: {train_chars} training characters in batch_size {batch} streams are "
            f"too few for one window of T = {longest}; lower batch_size"
        )
    test = min(config.get("test_chars") or test_chars, test_chars)
    if test // config["eval_batch"] < config["eval_len"] + 1:
        raise SettingError(
            f"settings: {test} test characters in eval_batch {config['eval_batch']} streams are "
            f"too few for one window of eval_len {config['eval_len']}"
        )


def fetch_data(name: str, config: dict) -> None:
    """Find (or download) and verify the data files experiment ``name`` reads; a
    DataError names the file that is missing, unreadable or damaged."""
    from ..data import cache, mnist

    if "mnist" in _datasets(name, config):
        for split in ("train", "test"):
            for filename, sha256 in mnist.FILES[split]:
                urls = [base + filename for base in mnist.URLS]
                cache.fetch("mnist", filename, urls, sha256, decompress_gz=True)
    if name == "rnn-ptb":
        from ..data import load_ptb_chars
        from .rnn_ptb import trained_on

        train = load_ptb_chars(trained_on(config))
        check_ptb(config, len(train), len(load_ptb_chars("test")))


# ----------------------------------------------------------------- memory


def physical_memory() -> int | None:
    """The machine's memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # unreachable


def _dense(sizes: list[int]) -> int:
    """Weights of a chain of Linear layers of ``sizes``."""
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def _widest(value) -> list[int]:
    """The widest hidden-width list of a per-method mapping (or the list itself)."""
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        return max(lists, key=sum, default=[])
    return list(value or [])


def memory_estimate(name: str, config: dict) -> int:
    """Bytes the largest run of ``config`` needs, roughly (within a small factor): enough
    to tell a model that fits from one a thousand times too large. 0 where unknown."""
    batch = config.get("batch_size", 1)
    params = acts = data = 0
    if name in ("ff", "update-prob", "unlock"):
        w = config["width"]
        depth = max(config.get("depths") or [config.get("depth", 1)])
        sizes = [784] + [w] * depth + [10]
        params = _dense(sizes) + depth * _dense([w + 10, *_widest(config.get("sg_hidden")), w])
        if config.get("input_hidden"):
            params += depth * _dense([784, *config["input_hidden"], w])
        acts = (8 * batch + 1000) * sum(sizes)  # a training batch's caches, an eval batch
        data = 2 * 70_000 * 784
    elif name == "ff-cnn":
        for dataset in config["datasets"]:
            channels = config["channels"][dataset]
            c_in, side = (1, 28) if dataset == "mnist" else (3, 32)
            k2 = config.get("sg_k", 5) ** 2
            params = max(params, 25 * _dense([c_in, *channels]) * 3)  # net and SG models
            maps = side * side * sum(channels)
            acts = max(acts, (4 * batch + 1000) * maps * k2)  # 5x5 windows of every map
            data = max(data, 2 * sum(SIZES[dataset]) * c_in * side * side)
    elif name in ("rnn-copy", "rnn-ptb"):
        h = config["hidden"]
        d = config["bits"] + 2 if "bits" in config else 50  # copy: bits + 2 markers; PTB: 50
        params = 4 * h * (d + h) + h * d + _dense([2 * h, *config.get("sg_hidden", []), 2 * h])
        steps = max(config["truncations"]) + max(config.get("eval_len", 0), 0)
        acts = (batch + config.get("eval_batch", 0)) * steps * 12 * h
    elif name == "multinet":
        h = max(config["h_a"], config["h_b"])
        params = 784 * config["d_enc"] + 8 * h * (config["d_enc"] + config["d_msg"] + 2 * h)
        window = max(config["ks"]) ** 2
        acts = (batch * window + config["eval_streams"] * config["eval_steps"]) * (784 + 12 * h)
        data = 70_000 * 784
    elif name == "parallel":
        sizes = [s for module in config["layout"] for s in module]
        params = 3 * sum(_dense(module) for module in config["layout"])
        acts = (8 * batch + 1000) * sum(sizes)
        data = 2 * 70_000 * 784
    return BYTES * (4 * params + acts + data)  # 4: value, gradient, Adam's m and v
