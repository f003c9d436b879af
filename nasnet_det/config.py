"""One config mechanism for every tool: fvcore's ``CfgNode``, as Detectron2 uses it.

A config is a defaults node (every key commented where it is defined) plus a YAML file that may
inherit from others through ``_BASE_`` (paths relative to the file) plus ``KEY VALUE`` overrides
from the command line, typed by the default's type. YAML is read with ``yaml.safe_load`` only: a
file with a Python tag (``!!python/...``) is refused, never executed. Unknown keys, wrong types,
broken YAML and missing files each raise one ``ValueError`` line that names the file and the key.

fvcore is Detectron2's own config library (already installed with it, light to import), so the
search, pretraining and detection configs behave the same way.
"""

from __future__ import annotations

import ast
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from fvcore.common.config import CfgNode

from nasnet_det.limits import check_yaml_size, read_input_bytes

__all__ = [
    "CfgNode",
    "ConfigError",
    "Rule",
    "check_table",
    "choice",
    "fail",
    "integer",
    "literal",
    "load_config",
    "lookup",
    "merge_config_file",
    "merge_overrides",
    "number",
    "numbers",
]


class ConfigError(ValueError):
    """A config file or override is unusable; the message is one line naming file and key."""


_MISMATCH = re.compile(
    r"Type mismatch \((<class '(?:[\w.]+\.)?(\w+)'>) vs\. (<class '(?:[\w.]+\.)?(\w+)'>)\) "
    r"with values \((.*) vs\. (.*)\) "
    r"for config key: (\S+)",
    re.S,
)


def _reword(err: BaseException, where: str) -> ConfigError:
    """fvcore/yacs errors in our words: which key, what was expected."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    m = _MISMATCH.search(text)
    if m and m.group(2) == "CfgNode":
        return ConfigError(f"{where}: config key {m.group(7)} is a section, got {m.group(6)}")
    if m:
        return ConfigError(
            f"{where}: config key {m.group(7)} expects a {m.group(2)} "
            f"(default {m.group(5)}), got {m.group(6)!s} ({m.group(4)})"
        )
    m = re.search(r"Non-existent (?:config )?key: (\S+)", text)
    if m:
        return ConfigError(f"{where}: unknown config key {m.group(1)}")
    m = re.search(r"Cannot inherit key '(.+)' from base", text)
    if m:
        return ConfigError(f"{where}: key {m.group(1)} is a section in the base config")
    line = " ".join(text.split())
    return ConfigError(f"{where}: {line or type(err).__name__}")


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{problem}{where}"


def _read_yaml(p: Path, what: str) -> Any:
    """One YAML file, bounded (size, alias expansion) and safe (no Python tags)."""
    try:
        text = read_input_bytes(p, "yaml", what).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} {str(p)!r} is not UTF-8 text (byte {e.start})") from None
    except ValueError as e:
        raise ConfigError(str(e)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as e:
        raise ConfigError(
            f"{what} {str(p)!r} uses a YAML tag that builds Python objects "
            f"({_yaml_problem(e)}); configs hold plain data only"
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} {str(p)!r} is not valid YAML: {_yaml_problem(e)}") from None
    except RecursionError:
        raise ConfigError(f"{what} {str(p)!r} is nested too deeply to read") from None
    try:
        check_yaml_size(data, p, what)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return data


def _merge_dicts(a: dict, b: dict, where: str) -> None:
    """fvcore's ``_BASE_`` rule: ``a``'s values override ``b``'s, sections merge key by key."""
    for k, v in a.items():
        if isinstance(v, dict) and k in b:
            if not isinstance(b[k], dict):
                raise ConfigError(f"{where}: key {k} is a section in the base config")
            _merge_dicts(v, b[k], where)
        else:
            b[k] = v


def _load_with_base(p: Path, what: str, chain: tuple[Path, ...] = ()) -> dict:
    """``p`` merged onto its ``_BASE_`` files (relative to ``p``), each read by
    :func:`_read_yaml`; a cycle or a broken base names the file that holds it."""
    data = _read_yaml(p, what)
    if data is None:
        raise ConfigError(f"{what} {str(p)!r} is empty; expected a mapping of config keys")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{what} {str(p)!r} holds a {type(data).__name__}; expected a mapping of config keys"
        )
    bases = data.pop("_BASE_", None)
    if bases is None:
        return data
    chain = (*chain, p.resolve())
    merged: dict = {}
    for base in bases if isinstance(bases, list) else [bases]:
        if not isinstance(base, str):
            raise ConfigError(f"{what} {str(p)!r}: _BASE_ must be a path, got {base!r}")
        bp = Path(os.path.expanduser(base))
        bp = bp if bp.is_absolute() else p.parent / bp
        if bp.resolve() in chain:
            raise ConfigError(f"{what} {str(p)!r}: _BASE_ {base!r} inherits from itself (a cycle)")
        _merge_dicts(_load_with_base(bp, f"{what} {str(p)!r}: _BASE_", chain), merged, str(p))
    _merge_dicts(data, merged, f"{what} {str(p)!r}")
    return merged


def merge_config_file(cfg: CfgNode, path: str | os.PathLike, what: str = "config file") -> CfgNode:
    """Merge a YAML file (with its ``_BASE_`` chain) into ``cfg``, safely; returns ``cfg``."""
    p = Path(path)
    loaded = _load_with_base(p, what)
    loaded = _ints_to_floats(cfg, loaded)
    version = cfg.get("VERSION")  # Detectron2 nodes carry their config version
    try:
        if version is None or loaded.get("VERSION", version) == version:
            cfg.merge_from_other_cfg(type(cfg)(loaded))
        else:  # an older Detectron2 config (already checked above): its own merge upgrades it
            cfg.merge_from_file(str(p), allow_unsafe=False)
    except (KeyError, ValueError, AssertionError, TypeError) as e:
        raise _reword(e, f"{what} {str(p)!r}") from None
    return cfg


def _ints_to_floats(defaults: Any, data: Any) -> Any:
    """``lr: 1`` in a file means 1.0 where the default is a float (yacs would refuse the int)."""
    if not isinstance(data, dict) or not isinstance(defaults, dict):
        return data
    out = {}
    for key, value in data.items():
        default = defaults.get(key)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif isinstance(value, dict):
            value = _ints_to_floats(default, value)
        out[key] = value
    return out


def _coerce(cfg: CfgNode, key: str, value: str) -> str:
    """``1`` for a float key is 1.0, as a user means it (yacs would refuse the int)."""
    node = cfg
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return value
    default = node.get(leaf) if isinstance(node, dict) else None
    if isinstance(default, float) and not isinstance(default, bool):
        parsed = literal(value)
        if isinstance(parsed, int) and not isinstance(parsed, bool):
            return repr(float(parsed))
    return value


def merge_overrides(cfg: CfgNode, opts: Sequence[str], what: str = "command line") -> CfgNode:
    """Merge ``KEY VALUE`` pairs; values are Python literals typed by the defaults."""
    opts = [str(o) for o in opts]
    if len(opts) % 2:
        raise ConfigError(f"{what}: overrides must be KEY VALUE pairs, got an odd list {opts}")
    pairs = []
    for key, value in zip(opts[0::2], opts[1::2]):
        pairs += [key, _coerce(cfg, key, value)]
    try:
        cfg.merge_from_list(pairs)
    except (KeyError, ValueError, AssertionError, TypeError) as e:
        raise _reword(e, what) from None
    return cfg


def load_config(
    defaults: CfgNode,
    config_file: str | os.PathLike | None = None,
    opts: Sequence[str] | None = None,
    what: str = "config file",
) -> CfgNode:
    """A copy of ``defaults`` merged with ``config_file`` then ``opts``."""
    cfg = defaults.clone()
    if config_file:
        merge_config_file(cfg, config_file, what)
    if opts:
        merge_overrides(cfg, opts)
    return cfg


# ------------------------------------------------------------------------------------ checks
# Every config family (detection, pretraining, search) checks its values the same way: a table
# of ``(key, Rule)`` rows run by :func:`check_table`, one ``ConfigError`` naming the first bad
# key as ``config key KEY must be EXPECTED, got VALUE``.


def literal(text: str) -> Any:
    """A command-line value as the config merge reads it: a Python literal, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


@dataclass(frozen=True)
class Rule:
    """A test on one config value and the words for what it expects (``"an integer >= 1"``)."""

    test: Callable[[Any], bool]
    expected: str

    def holds(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except (TypeError, ValueError, AttributeError):  # a list where a number belongs, ...
            return False


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _words(kind: str, low, high, open_low: bool, open_high: bool, note: str) -> str:
    if low is not None and high is not None:
        kind += f" in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
    elif low is not None:
        kind += f" {'>' if open_low else '>='} {low}"
    elif high is not None:
        kind += f" {'<' if open_high else '<='} {high}"
    return kind + (f" ({note})" if note else "")


def _within(v: Any, low, high, open_low: bool, open_high: bool) -> bool:
    above = low is None or (v > low if open_low else v >= low)
    return above and (high is None or (v < high if open_high else v <= high))


def integer(
    low: int | None = None, high: int | None = None, *, none_ok: bool = False, note: str = ""
) -> Rule:
    """An ``int`` (not a bool) in ``[low, high]``; ``None`` too when ``none_ok``."""
    words = _words("an integer", low, high, False, False, "") + (" or None" if none_ok else "")
    return Rule(
        lambda v: (v is None and none_ok) or (_is_int(v) and _within(v, low, high, False, False)),
        words + (f" ({note})" if note else ""),
    )


def number(
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
    note: str = "",
) -> Rule:
    """A finite ``int`` or ``float`` (not a bool) between ``low`` and ``high``."""
    return Rule(
        lambda v: _is_number(v) and _within(v, low, high, open_low, open_high),
        _words("a number", low, high, open_low, open_high, note),
    )


def choice(*allowed: Any) -> Rule:
    """One of ``allowed``."""
    return Rule(lambda v: v in allowed, "one of " + ", ".join(str(a) for a in allowed))


def numbers(count: int, rule: Rule) -> Rule:
    """A list or tuple of ``count`` values, each passing ``rule``."""
    return Rule(
        lambda v: isinstance(v, (list, tuple)) and len(v) == count and all(map(rule.holds, v)),
        f"{count} numbers, each {rule.expected.removeprefix('a number ')}",
    )


def lookup(cfg: Any, key: str) -> Any:
    """``cfg`` at the dotted ``key`` (``"SOLVER.BASE_LR"``)."""
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def check_table(cfg: Any, table: Iterable[tuple[str, Rule]]) -> None:
    """Run every ``(key, rule)`` row; the first failing one raises :class:`ConfigError`."""
    for key, rule in table:
        value = lookup(cfg, key)
        if not rule.holds(value):
            fail(key, rule.expected, value)


def fail(key: str, expected: str, value: Any) -> None:
    """Raise the one message style of every config check."""
    raise ConfigError(f"config key {key} must be {expected}, got {value!r}")
