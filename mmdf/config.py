"""Configs: plain YAML with inheritance, command-line overrides, typed dataclasses.

A YAML file may name the file it extends with ``base: path`` (relative to the
file itself); mappings merge key by key, anything else is replaced. Overrides
``key.sub=value`` (values parsed as YAML) are applied last. The merged tree is
then built into a typed dataclass (a run's :class:`mmdf.run_config.Config`,
whose sections are one dataclass per component); an unknown key or a wrongly
typed value raises :class:`ConfigError` naming the key and the file (or
override) that set it.

This module is the loader only: it knows no component. The run's config is
assembled above the components, in :mod:`mmdf.run_config`.

Relative paths inside a config (data root, cache, runs) are relative to the
working directory, as with ``python tools/...`` run from the project root.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from mmdf.errors import ConfigError, not_utf8
from mmdf.files import atomic_write

BASE_KEY = "base"
# field metadata: a callable giving the field's type when the config is built (a section whose
# fields are known only at run time, such as ``train`` with one section per registered branch)
TYPE_AT_BUILD = "type_at_build"


# --------------------------------------------------------------------------- loading


def load(cls: type, path: str | Path | None = None, overrides: Iterable[str] = (),
         updates: Iterable[tuple[Mapping, str]] = ()):
    """Load ``path`` (with its bases), apply ``key=value`` overrides, build dataclass ``cls``.

    ``updates`` are ``(mapping, where)`` pairs merged after the file and before
    the overrides (an experiment's variants); their keys may be dotted
    (``{'train.epochs': 3}``) and ``where`` names them in error messages.
    """
    tree: dict = {}
    sources: dict[str, str] = {}
    if path is not None:
        tree, sources = load_yaml_tree(path)
    for mapping, where in updates:
        update = expand_dotted(mapping, where)
        tree = merge(tree, update)
        _record_sources(sources, "", update, where)
    for item in overrides:
        keys, value = parse_override(item)
        where = f"command-line override '{item}'"
        _set_path(tree, keys, value, where)
        _record_sources(sources, ".".join(keys), value, where)
    return build(cls, tree, sources)


def load_yaml_tree(path: str | Path, _seen: tuple[Path, ...] = ()) -> tuple[dict, dict[str, str]]:
    """Read a YAML file and everything it extends; return the merged tree and key sources."""
    path = Path(path)
    if not path.is_file():
        hint = f" (named as base by {_seen[-1]})" if _seen else ""
        raise ConfigError(f"config file not found: {path}{hint}")
    resolved = path.resolve()
    if resolved in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, resolved))
        raise ConfigError(f"config bases form a cycle: {chain}")
    data = _read_yaml(path)
    tree: dict = {}
    sources: dict[str, str] = {}
    for b in _bases(path, data.pop(BASE_KEY, None)):
        sub, sub_sources = load_yaml_tree(path.parent / b, (*_seen, resolved))
        tree = merge(tree, sub)
        sources.update(sub_sources)
    tree = merge(tree, data)
    _record_sources(sources, "", data, str(path))
    return tree, sources


def _bases(path: Path, base: Any) -> list[str]:
    """The files ``base`` names (one path or a list of paths); anything else raises naming the file and key."""
    bases = [] if base is None else [base] if isinstance(base, str) else base
    if not isinstance(bases, list) or not all(isinstance(b, str) and b.strip() for b in bases):
        raise ConfigError(
            f"{path}: key '{BASE_KEY}' must be a path or a list of paths (relative to the file), got {base!r}"
        )
    return bases


def _read_yaml(path: Path) -> dict:
    """The mapping in a YAML file; not UTF-8, not YAML or not a mapping raises :class:`ConfigError` naming it."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {not_utf8(data, exc)}; save the file as UTF-8 and run again") from None
    try:
        tree = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys, got {type(tree).__name__}")
    return tree


def merge(base: Mapping, update: Mapping) -> dict:
    """Deep-merge ``update`` into a copy of ``base``: mappings merge, other values replace."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def expand_dotted(mapping: Mapping, where: str = "") -> dict:
    """``{'train.epochs': 3, 'stack': {'lightgbm.num_leaves': 5}}`` as a nested tree."""
    out: dict = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            value = expand_dotted(value, where)
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{where or 'config'}: '{key}' sets a key inside '{part}', which is not a section")
            node = child
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = merge(node[parts[-1]], value)
        else:
            node[parts[-1]] = value
    return out


def parse_override(item: str) -> tuple[list[str], Any]:
    """``'train.lr=3e-4'`` -> (['train', 'lr'], 0.0003); the value is parsed as YAML."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{item}' is not of the form key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        value = _yaml_number(value)
    return key.strip().split("."), value


def _yaml_number(text: str) -> Any:
    # PyYAML reads '3e-4' as a string (YAML 1.1); users mean a number.
    try:
        return float(text) if any(c in text.lower() for c in ".e") else int(text)
    except ValueError:
        return text


def _set_path(tree: dict, keys: list[str], value: Any, where: str) -> None:
    node = tree
    for i, key in enumerate(keys[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: '{'.'.join(keys[: i + 1])}' is not a section")
        node = child
    node[keys[-1]] = value


def _record_sources(sources: dict[str, str], prefix: str, value: Any, where: str) -> None:
    if prefix:
        sources[prefix] = where
    if isinstance(value, Mapping):
        for key, sub in value.items():
            _record_sources(sources, f"{prefix}.{key}" if prefix else str(key), sub, where)


# --------------------------------------------------------------------------- typed build


def build(cls: type, data: Any, sources: Mapping[str, str] | None = None, prefix: str = ""):
    """Build dataclass ``cls`` from a mapping, checking keys and types recursively."""
    sources = sources or {}
    where = _where(sources, prefix)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"'{prefix or 'config'}' must be a mapping{where}, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    names = set(fields)
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(
                f"unknown config key '{dotted}'{_where(sources, dotted)}; "
                f"known keys{' of ' + prefix if prefix else ''}: {known}"
            )
        at_build = fields[key].metadata.get(TYPE_AT_BUILD)
        kwargs[key] = _coerce(at_build() if at_build else hints[key], value, sources, dotted)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid '{prefix or 'config'}'{where}: {exc}") from None


def _where(sources: Mapping[str, str], dotted: str) -> str:
    src = sources.get(dotted)
    return f" (set in {src})" if src else ""


def _coerce(tp: Any, value: Any, sources: Mapping[str, str], dotted: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    fail = ConfigError(
        f"config key '{dotted}'{_where(sources, dotted)} must be {_type_name(tp)}, got {value!r}"
    )
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, sources, dotted)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, sources, dotted)
            except ConfigError:
                continue
        raise fail
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(
            f"config key '{dotted}'{_where(sources, dotted)} must be one of "
            f"{', '.join(map(repr, args))}, got {value!r}"
        )
    if origin in (list, tuple):
        if isinstance(value, (list, tuple)):
            inner = args[0] if args else Any
            items = [_coerce(inner, v, sources, dotted) for v in value]
            return items if origin is list else tuple(items)
        raise fail
    if origin is dict:
        if isinstance(value, Mapping):
            inner = args[1] if len(args) == 2 else Any
            return {str(k): _coerce(inner, v, sources, f"{dotted}.{k}") for k, v in value.items()}
        raise fail
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise fail
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise fail
    return value


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "null")


# --------------------------------------------------------------------------- saving


def to_dict(cfg: Any) -> dict:
    """A plain-data view of a config (tuples become lists), ready for YAML or JSON."""
    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config so that a run can be reproduced from its own folder."""
    path = Path(path)
    with atomic_write(path) as tmp:
        tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- command line


def add_config_arguments(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """The ``--config FILE key=value ...`` convention shared by every subcommand."""
    parser.add_argument(
        "--config", "-c", default=default, required=default is None,
        help="YAML config (may extend a base)" + (f"; default {default}" if default else ""),
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value",
        help="override config keys, e.g. train.epochs=3 data.root=/data/ffdv",
    )
