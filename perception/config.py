"""YAML configs validated into dataclasses.

A config file is a YAML mapping. It may name one parent with ``base: other.yaml`` (a path
relative to the file); the parent is loaded, the child's mappings are merged into it key by
key, and any other value (lists included) replaces the parent's. A parent may not itself have
a ``base:``: one level of inheritance keeps every value findable in two files at most.

The merged mapping is converted into a schema dataclass. Supported field types: ``bool``,
``int``, ``float``, ``str``, ``pathlib.Path``, enums, ``Literal[...]``, nested dataclasses,
``list[T]``, ``tuple[T, ...]``, fixed ``tuple[A, B]``, ``dict[str, T]`` and ``T | None``.
Constraints go in field metadata: ``ge``, ``gt``, ``le``, ``lt`` (numbers, or every element
of a list/tuple of numbers), ``choices`` and ``min_len``/``max_len``. A schema may define a
``validate(self)`` method for cross-field checks; raise :class:`ValueError` there and the
error is reported with the file.

Float fields must be finite (YAML ``.inf`` and ``.nan`` are refused), path fields may not
hold a NUL byte, and a file may expand (through YAML aliases) to at most
:data:`MAX_CONFIG_VALUES` values.

Every problem raises :class:`~perception.errors.ConfigError` naming the file, the key path
(``model.lidar.voxel_size_m[2]``) and what was expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ConfigError

T = TypeVar("T")

BASE_KEY = "base"
PACKAGE_NAME = "fusion_perception"


def config_dir() -> Path:
    """The directory holding the shipped YAML configs (``configs/`` of the repository).

    In a source checkout (and an editable install) that is ``<repo>/configs``; in an installed
    package (``pip install .``, ``colcon build``) the same tree is installed as data files under
    ``<prefix>/share/fusion_perception/configs``.
    """
    source = Path(__file__).resolve().parent.parent / "configs"
    if source.is_dir():
        return source
    installed = Path(sys.prefix) / "share" / PACKAGE_NAME / "configs"
    if installed.is_dir():
        return installed
    raise ConfigError(f"shipped configs not found in {source} or {installed}")


def load_config(path: str | Path, schema: type[T]) -> T:
    """Load ``path`` (with at most one ``base:`` parent) and validate it into ``schema``."""
    path = Path(path)
    data = load_yaml_with_base(path)
    return from_dict(schema, data, source=str(path))


def load_yaml_with_base(path: Path) -> dict[str, Any]:
    """The YAML mapping of ``path`` merged over its ``base:`` parent (if any)."""
    data = _read_mapping(path)
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str) or not base or "\0" in base:
        raise ConfigError(f"{path}: {BASE_KEY}: expected a file path string, got {base!r}")
    base_path = (path.parent / base).resolve()
    parent = _read_mapping(base_path, child=path)
    if BASE_KEY in parent:
        raise ConfigError(f"{base_path}: {BASE_KEY}: a base config may not have a base itself "
                          f"(one level of inheritance; included from {path})")
    return merge(parent, data)


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The YAML mapping in ``path`` (no ``base:`` handling), read with the same checks as a
    config: UTF-8, valid YAML, a mapping at the top, at most :data:`MAX_CONFIG_VALUES` values.

    Raises:
        ConfigError: naming the file and what is wrong.
    """
    return _read_mapping(Path(path))


def _read_mapping(path: Path, child: Path | None = None) -> dict[str, Any]:
    via = f" (base of {child})" if child else ""
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found{via}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file{via} ({exc.reason} at byte "
                          f"{exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read{via}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML{via}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML{via}: nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got "
                          f"{type(data).__name__}{via}")
    _check_size(data, f"{path}{via}")
    return data


MAX_CONFIG_VALUES = 100_000
"""Most values a config may hold once YAML aliases are expanded. Real configs hold a few
hundred; an alias chain (``a: &a [x, x]``, ``b: &b [*a, *a]``, ...) can stand for billions,
which validating would take hours to walk."""


def _check_size(data: Any, where: str) -> None:
    count = 0
    stack = [data]
    while stack:
        value = stack.pop()
        count += 1
        if count > MAX_CONFIG_VALUES:
            raise ConfigError(f"{where}: more than {MAX_CONFIG_VALUES} values once YAML "
                              f"aliases are expanded; not a config")
        if isinstance(value, Mapping):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)


def merge(parent: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive merge: mappings merge key by key, anything else in ``child`` replaces."""
    out = dict(parent)
    for key, value in child.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def from_dict(schema: type[T], data: Any, source: str = "<config>") -> T:
    """Validate a mapping into the dataclass ``schema``; errors name ``source`` and the key."""
    if not dataclasses.is_dataclass(schema):
        raise TypeError(f"schema must be a dataclass type, got {schema!r}")
    return _convert(schema, data, _Path(source, ()))


def to_dict(config: Any) -> Any:
    """A dataclass config back to plain YAML-able data (enums by value, tuples as lists)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, enum.Enum):
        return config.value
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {k: to_dict(v) for k, v in config.items()}
    if isinstance(config, Path):
        return str(config)
    return config


class _Path:
    """Where a value sits: file plus key path, for error messages."""

    def __init__(self, source: str, keys: tuple[str | int, ...]):
        self.source = source
        self.keys = keys

    def child(self, key: str | int) -> _Path:
        return _Path(self.source, self.keys + (key,))

    def __str__(self) -> str:
        text = ""
        for key in self.keys:
            text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else key)
        return text or "<top level>"

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self}: {message}")


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        if issubclass(tp, enum.Enum):
            return f"one of {[m.value for m in tp]}"
        if dataclasses.is_dataclass(tp):
            return f"a mapping ({tp.__name__})"
        return tp.__name__
    return str(tp).replace("typing.", "")


def _convert(tp: Any, value: Any, where: _Path) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _convert_union(tp, args, value, where)
    if origin is typing.Literal:
        if value not in args:
            raise where.error(f"expected one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, where)
    if origin in (list, tuple) or tp in (list, tuple):
        return _convert_sequence(tp, origin or tp, args, value, where)
    if origin is dict or tp is dict:
        return _convert_dict(args, value, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise where.error(f"expected {_type_name(tp)}, got {value!r}") from None
    return _convert_scalar(tp, value, where)


def _convert_union(tp: Any, args: tuple, value: Any, where: _Path) -> Any:
    if value is None:
        if type(None) in args:
            return None
        raise where.error(f"expected {_type_name(tp)}, got null")
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _convert(arg, value, where)
        except ConfigError as exc:
            errors.append(str(exc))
    if len(errors) == 1:
        raise ConfigError(errors[0])
    raise where.error(f"expected {_type_name(tp)}, got {value!r}")


def _convert_scalar(tp: Any, value: Any, where: _Path) -> Any:
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        # NaN and infinities (YAML .nan, .inf) pass every range check (NaN compares False)
        # and break the arithmetic downstream; no config value means them.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if math.isfinite(number):
                return number
            raise where.error(f"expected a finite float, got {value!r}")
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Path:
        # A NUL byte is refused by every file system call later, with an untyped error.
        if isinstance(value, str) and "\0" not in value:
            return Path(value)
    else:
        raise TypeError(f"unsupported config field type {tp!r} at {where}")
    raise where.error(f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def _convert_sequence(tp: Any, origin: type, args: tuple, value: Any, where: _Path) -> Any:
    if not isinstance(value, (list, tuple)):
        raise where.error(f"expected a list ({_type_name(tp)}), got "
                          f"{type(value).__name__} {value!r}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise where.error(f"expected {len(args)} items ({_type_name(tp)}), got "
                              f"{len(value)}")
        items = [_convert(a, v, where.child(i)) for i, (a, v) in enumerate(zip(args, value))]
    else:
        item_tp = args[0] if args else Any
        items = [_convert(item_tp, v, where.child(i)) for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _convert_dict(args: tuple, value: Any, where: _Path) -> dict:
    if not isinstance(value, Mapping):
        raise where.error(f"expected a mapping, got {type(value).__name__} {value!r}")
    key_tp, val_tp = args if args else (str, Any)
    out = {}
    for key, item in value.items():
        out[_convert(key_tp, key, where.child(str(key)))] = _convert(val_tp, item,
                                                                     where.child(str(key)))
    return out


def _convert_dataclass(tp: type, value: Any, where: _Path) -> Any:
    if not isinstance(value, Mapping):
        raise where.error(f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
    unknown = [k for k in value if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise where.child(str(key)).error(f"unknown key{hint} (known keys of {tp.__name__}: "
                                          f"{sorted(fields)})")
    hints = typing.get_type_hints(tp)
    kwargs = {}
    for name, f in fields.items():
        if name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise where.child(name).error(f"required key is missing (expected "
                                              f"{_type_name(hints[name])})")
            continue
        converted = _convert(hints[name], value[name], where.child(name))
        _check_constraints(f.metadata, converted, where.child(name))
        kwargs[name] = converted
    try:
        obj = tp(**kwargs)
        validate = getattr(obj, "validate", None)
        if callable(validate):
            validate()
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise where.error(str(exc)) from None
    return obj


def _check_constraints(meta: Mapping[str, Any], value: Any, where: _Path) -> None:
    if not meta or value is None:
        return
    if "choices" in meta and value not in meta["choices"]:
        raise where.error(f"expected one of {list(meta['choices'])}, got {value!r}")
    if isinstance(value, (list, tuple, str, dict)):
        if "min_len" in meta and len(value) < meta["min_len"]:
            raise where.error(f"expected at least {meta['min_len']} items, got {len(value)}")
        if "max_len" in meta and len(value) > meta["max_len"]:
            raise where.error(f"expected at most {meta['max_len']} items, got {len(value)}")
    numbers = list(value) if isinstance(value, (list, tuple)) else [value]
    for i, number in enumerate(numbers):
        at = where.child(i) if isinstance(value, (list, tuple)) else where
        if not isinstance(number, (int, float)) or isinstance(number, bool):
            continue
        for key, ok, text in (("ge", lambda a, b: a >= b, ">="), ("gt", lambda a, b: a > b, ">"),
                              ("le", lambda a, b: a <= b, "<="), ("lt", lambda a, b: a < b, "<")):
            if key in meta and not ok(number, meta[key]):
                raise at.error(f"value {number!r} out of range: expected {text} {meta[key]}")
