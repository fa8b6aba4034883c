"""Checking ``minidni reproduce --set KEY=VALUE`` values before any work starts.

A value must have the type and shape of the profile's own value for that key: a whole
number where the profile has one, a number for a number, a list of the same kind of
entries for a list, and for a *per-method* setting (a mapping such as
``lr = {"bprop": 0.001, "dni": 0.0003, "cdni": 0.001}``) a mapping from method names to
such values. A per-method override may name only some methods; the others keep the
profile's values. Some keys also have a range (``RULES``): learning rates are >= 0,
sizes >= 1, ``p_update`` in (0, 1], names one of a known set. The lists that span an
experiment's grid (``AXES``: seeds, depths, methods, ...) hold each value once. A
setting that is off in the profile (``None``) takes ``null`` or a value within its range.

A bad value raises :class:`SettingError` (a ValueError) with one line naming the setting,
what it expects (with an example built from the profile's value) and what it got.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any


class SettingError(ValueError):
    """A ``--set`` value of the wrong type, shape or range."""


# Ranges and choices by key (and for the entries of lists / per-method mappings).
WHOLE_1 = ("a whole number >= 1", lambda v: v >= 1)
WHOLE_0 = ("a whole number >= 0", lambda v: v >= 0)
RATE = ("a number >= 0", lambda v: v >= 0)
POSITIVE = ("a number > 0", lambda v: v > 0)
PROBABILITY = ("a number in (0, 1]", lambda v: 0 < v <= 1)
RULES: dict[str, tuple[str, Any]] = {
    **dict.fromkeys(("lr", "sg_lr", "input_lr", "sg_scale", "target_discount"), RATE),
    "threshold": POSITIVE,
    "p_update": PROBABILITY,
    **dict.fromkeys(("seeds", "staleness"), WHOLE_0),
}
# The lists whose product is an experiment's grid: a value twice would run a run twice.
AXES = ("seeds", "depths", "truncations", "tasks", "methods", "p_update", "staleness")
AXES += ("modes", "ks", "datasets")
CHOICES = {
    "tasks": ("copy", "repeat_copy"),
    "modes": ("sg", "unlock"),
    "train_split": ("auto", "train", "valid", "test"),
    "methods": ("bprop", "dni", "cdni", "dni_aux"),
    "criterion": ("xent_bits", "wrong_bits"),
}


def parse(items: list[str]) -> dict:
    """``--set KEY=VALUE`` items as a dict; VALUE is JSON (``3000``, ``[3, 6]``,
    ``{"dni": [1024]}``) or else a plain string. A SettingError for an item without
    ``=`` or a key given twice."""
    overrides: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SettingError(f"--set expects KEY=VALUE, got {item!r}")
        if key in overrides:
            raise SettingError(f"--set {key}: given twice; give each setting once")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def configure(
    profiles: dict, profile: str, overrides: dict | None = None, choices: dict | None = None
) -> dict:
    """The settings of ``profile``, with ``overrides`` (``minidni reproduce --set``) applied.

    Only keys the profile already has may be overridden, each with a value of the
    profile's type and shape (:mod:`.settings`; ``choices``: the experiment's valid
    names); a per-method override may name only some methods. The overrides, as given,
    are kept in the config under ``"overrides"`` so that a results file says it is not
    a stock profile.
    """
    config = dict(profiles[profile])
    if overrides:
        unknown = sorted(set(overrides) - set(config))
        if unknown:
            raise SettingError(
                f"unknown setting(s) {', '.join(unknown)} for profile {profile!r}; "
                f"valid ones are: {', '.join(sorted(config))}"
            )
        config.update(check_overrides(config, overrides, choices))
        config["overrides"] = dict(overrides)
    return config


def check_overrides(config: dict, overrides: dict, choices: dict | None = None) -> dict:
    """``overrides`` checked against the profile ``config`` and ready to apply: per-method
    mappings completed from the profile. ``choices`` adds an experiment's own sets of
    valid names (e.g. its methods); by default the methods of an experiment with
    per-method settings are the keys of those. Raises :class:`SettingError`."""
    names = dict(CHOICES)
    # A per-method setting is a mapping keyed by method names (not, e.g., by data set).
    known = set(CHOICES["methods"]) | set((choices or {}).get("methods", ()))
    per_method = [v for v in config.values() if isinstance(v, dict) and set(v) <= known]
    if per_method:
        names["methods"] = tuple(per_method[0])
    names.update(choices or {})
    checked = {}
    for key, value in overrides.items():
        checked[key] = _check(key, config[key], value, names)
    methods = checked.get("methods", config.get("methods"))
    for key, value in {**config, **checked}.items():  # every method needs its settings
        if isinstance(value, dict) and set(value) <= known and isinstance(methods, list):
            missing = [m for m in methods if m not in value]
            if missing:
                raise SettingError(
                    f"--set methods: {', '.join(missing)} has no {key!r} setting in this "
                    f"profile; valid methods here: {', '.join(value)}"
                )
    return checked


def _check(key: str, default: Any, value: Any, names: dict) -> Any:
    """``value`` if it fits the shape of ``default`` (the profile's value) and the rules."""
    example = f"e.g. --set '{key}={json.dumps(default)}'"
    if default is None:  # off by default: null, or a value within the key's range
        if value is None or key not in RULES or _fits(names, key, 1, value) is not None:
            return value
        raise _error(key, f"null or {RULES[key][0]}", value)
    if isinstance(default, dict):  # a per-method setting
        single = _describe(names, key, next(iter(default.values())))
        inner = _plural(single)
        what = f"a JSON object mapping method names ({', '.join(default)}) to {inner}"
        if not isinstance(value, dict) or not value:
            raise _error(key, f"{what}, {example}", value, "a per-method setting")
        unknown = [m for m in value if m not in default]
        if unknown:
            raise _error(key, f"{what}; {unknown[0]!r} is not one", value, "a per-method setting")
        for method, v in value.items():
            if _fits(names, key, default[method], v) is None:
                raise _error(f"{key}.{method}", f"{single}, {example}", v)
        return {**default, **{m: _fits(names, key, default[m], v) for m, v in value.items()}}
    fitted = _fits(names, key, default, value)
    if fitted is None:
        raise _error(key, f"{_describe(names, key, default)}, {example}", value)
    if key in AXES and isinstance(fitted, list):
        twice = sorted({json.dumps(v) for v in fitted if fitted.count(v) > 1})
        if twice:
            raise _error(key, f"each value once ({', '.join(twice)} is repeated)", value)
    return fitted


def _fits(names: dict, key: str, default: Any, value: Any) -> Any:
    """``value`` shaped like ``default`` (ints as floats where floats are due), else None."""
    if default is None:
        return value
    if isinstance(default, bool):
        return value if isinstance(value, bool) else None
    if isinstance(default, list):
        if not isinstance(value, list) or (default and not value):
            return None
        entry = default[0] if default else (1 if key.endswith("hidden") else None)
        items = [_fits(names, key, entry, v) for v in value]
        return None if any(i is None for i in items) else items
    if isinstance(default, str):
        choices = names.get(key)
        ok = isinstance(value, str) and (choices is None or value in choices)
        return value if ok else None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(default, numbers.Integral):
        if not isinstance(value, numbers.Integral):
            return None
        rule = RULES.get(key, WHOLE_1)
    else:
        if not math.isfinite(value):
            return None
        value = float(value)
        rule = RULES.get(key, POSITIVE)
    return value if rule[1](value) else None


def _describe(names: dict, key: str, default: Any) -> str:
    """What a value shaped like ``default`` is, in words."""
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, list):
        entry = default[0] if default else (1 if key.endswith("hidden") else None)
        if entry is None:
            return "a list"
        return f"a {'non-empty ' if default else ''}list of {_plural(_describe(names, key, entry))}"
    if isinstance(default, str):
        choices = names.get(key)
        return f"one of {', '.join(choices)}" if choices else "a string"
    if isinstance(default, numbers.Integral):
        return RULES.get(key, WHOLE_1)[0]
    return RULES.get(key, POSITIVE)[0]


def _plural(description: str) -> str:
    words = description.split(" ")
    if words[0] == "one":  # "one of a, b" -> "names out of a, b"
        return "names out of " + " ".join(words[2:])
    if words[0] == "a":
        words = words[1:]
    words = [w + "s" if w in ("number", "string", "list") else w for w in words]
    return " ".join(words)


def _error(key: str, expected: str, got: Any, kind: str = "") -> SettingError:
    what = f"{kind}, expects" if kind else "expects"
    return SettingError(f"--set {key}: {what} {expected}; got {json.dumps(got)}")
