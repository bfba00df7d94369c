"""Typed configs: nested dataclasses, loaded from YAML and `key.sub=value` overrides, strictly validated.

Unknown keys and wrong types raise ConfigError naming the dotted path, never a traceback deep in training.
Configs are never mutated in place: overrides build a new object with `dataclasses.replace`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from robot_rl.atomic import write_text
from robot_rl.errors import ConfigError

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check `value` against the annotation `tp` and convert lossless cases (int -> float, list -> tuple)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            choices = ", ".join(repr(a) for a in get_args(tp))
            raise ConfigError(f"{path}: {value!r} is not one of {choices}")
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if dataclasses.is_dataclass(value) and isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{path}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        kt, vt = get_args(tp) or (Any, Any)
        return {_coerce(k, kt, path): _coerce(v, vt, f"{path}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], path: str = "") -> T:
    """Build dataclass `cls` from a mapping; unknown keys and wrong types are ConfigErrors."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f" in {path}" if path else ""
        raise ConfigError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}{where} "
                          f"(valid: {', '.join(sorted(fields))})")
    kwargs = {k: _coerce(v, hints[k], f"{path}.{k}" if path else k) for k, v in data.items()}
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path or cls.__name__}: {exc}") from None
    return obj


def to_dict(obj: Any) -> Any:
    """Plain YAML/JSON-able structure (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _set_path(tree: dict[str, Any], dotted: str, value: Any, cls: Any) -> None:
    """Set `a.b.c` in the plain tree of dataclass `cls`: sections are dataclasses (only their fields) or dict-typed
    fields (any key, e.g. `learner.temperature`, nested mappings made as needed: `learner.critic.reward_scale`)."""
    keys = dotted.split(".")
    node, tp = tree, cls
    free = False  # inside a dict-typed field
    for i, k in enumerate(keys):
        if dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            if k not in {f.name for f in dataclasses.fields(tp)}:
                raise ConfigError(f"unknown key {dotted}")
            sub = hints[k]
        elif get_origin(tp) is dict:
            free = True
            sub = get_args(tp)[1] if get_args(tp) else Any
        elif free or k in node:
            sub = Any
        else:
            raise ConfigError(f"unknown key {dotted}")
        if i == len(keys) - 1:
            node[k] = value
            return
        if free and k not in node:
            node[k] = {}
        if not isinstance(node.get(k), dict):
            raise ConfigError(f"{dotted}: '{k}' is not a config section")
        node, tp = node[k], sub


def load_config(cls: type[T], yaml_path: str | Path | None = None, overrides: list[str] | None = None,
                base: T | None = None) -> T:
    """Defaults (or `base`) <- YAML file <- `a.b=value` overrides, validated as a whole."""
    tree = to_dict(base if base is not None else cls())
    if yaml_path is not None:
        path = Path(yaml_path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        _merge(tree, loaded, "", cls)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key.sub=value")
        key, raw = item.split("=", 1)
        _set_path(tree, key.strip(), _parse_value(raw), cls)
    return from_dict(cls, tree)


def _parse_value(raw: str) -> Any:
    """YAML scalar/list syntax, plus the float spellings YAML 1.1 reads as strings (3e-4, 1E5)."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _merge(tree: dict[str, Any], update: dict[str, Any], path: str, cls: Any) -> None:
    """Merge a YAML mapping into the plain tree of dataclass `cls`: sections merge key by key, a dict-typed field
    (a free mapping such as `joint_names`) is replaced whole."""
    hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
    for k, v in update.items():
        where = f"{path}.{k}" if path else k
        if k not in tree:
            raise ConfigError(f"unknown key {where}")
        sub = hints.get(k, Any)
        if isinstance(tree[k], dict) and isinstance(v, dict) and get_origin(sub) is not dict:
            _merge(tree[k], v, where, sub)
        else:
            tree[k] = v


def save_yaml(obj: Any, path: str | Path) -> None:
    """Write a config as YAML atomically (a run's or a bundle's record of its settings is never half-written)."""
    write_text(path, yaml.safe_dump(to_dict(obj), sort_keys=False))


# ---- the command line: one path for every command ---------------------------------------------------------------
FieldFlag = tuple[str, str, str, dict[str, Any]]
"""(flag, config field, help, argparse extras): a short spelling of one field, e.g. ("--gap", "gap_s", "...", {})."""


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, example: str,
                         config_flags: tuple[str, ...] = ("--config",), field_flags: list[FieldFlag] | None = None
                         ) -> None:
    """`--config FILE.yaml` and `--set key=value ...` for the fields of dataclass `cls`, under their own names (dotted
    for nested sections and dict fields). `example` shows one override in the help; `field_flags` adds short
    spellings of single fields (add_field_flag)."""
    parser.add_argument(*config_flags, dest="config", type=Path, metavar="FILE.yaml",
                        help=f"YAML file of {cls.__name__} fields")
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help=f"override {cls.__name__} fields by name, e.g. --set {example} (fields: "
                             f"{', '.join(f.name for f in dataclasses.fields(cls))}; nested ones as a.b=value)")
    for flag, name, text, extra in field_flags or []:
        add_field_flag(parser, flag, name, text, **extra)


def _item(text: str) -> Any:
    """One list-flag item as YAML reads it alone (a number, a bool, or the text)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float, bool, str)) else text


class _SetField(argparse.Action):
    """`--flag VALUE` as `--set field=VALUE`, in command-line order with --set (the later wins); a field ending in
    "." takes KEY=VALUE items into that dict field."""

    def __init__(self, option_strings: list[str], dest: str, field: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.field = field

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        if self.field.endswith("."):
            for item in values:
                if "=" not in item:
                    parser.error(f"{option_string} {item}: expected KEY=VALUE")
                items.append(self.field + item)
        elif self.nargs == 0:
            items.append(f"{self.field}=true")
        else:
            # each item as --set would read it (YAML), so `--cmd-vel 0.5 0 0` gives numbers and `--params a b` names;
            # the list goes back quoted (JSON is YAML), so items holding brackets or commas stay one item each
            text = values if isinstance(values, str) else json.dumps([_item(v) for v in values])
            items.append(f"{self.field}={text}")
        setattr(namespace, self.dest, items)


def add_field_flag(parser: argparse.ArgumentParser, flag: str, field: str, help: str, **kwargs: Any) -> None:
    """A short flag for one config field (`--steps 300` is `--set offline_steps=300`); `nargs=0` makes a switch,
    a field ending in "." a dict field taking KEY=VALUE items."""
    if field.endswith("."):
        kwargs.setdefault("metavar", "KEY=VALUE")
        shown = f"{field}KEY=VALUE"
    elif kwargs.get("nargs") == 0:
        shown = f"{field}=true"
    else:
        kwargs.setdefault("metavar", field.upper())
        shown = f"{field}=..."
    parser.add_argument(flag, dest="overrides", action=_SetField, field=field, default=[],
                        help=f"{help} (= --set {shown})".replace("%", "%%"), **kwargs)  # argparse formats %


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass `cls` (its first sentence), read from the source as tyro does;
    empty where the source is not available."""
    import ast
    import inspect
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for stmt, nxt in zip(body, body[1:]):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
            docs[stmt.target.id] = " ".join(nxt.value.value.split()).split(". ")[0].rstrip(".")
    return docs


def add_field_flags(parser: argparse.ArgumentParser, cls: type, example: str) -> None:
    """`--config`, `--set` and one flag per top-level field of dataclass `cls`, spelled as the field
    (`num_envs` -> `--num-envs`): a bool field is a switch that sets it true, a list field takes several values, a
    dict field takes KEY=VALUE items; nested sections are reached with --set."""
    add_config_arguments(parser, cls, example)
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            continue
        flag, text = "--" + f.name.replace("_", "-"), docs.get(f.name, f.name)
        origin = get_origin(tp)
        if tp is bool:
            add_field_flag(parser, flag, f.name, text, nargs=0)
        elif origin is dict:
            add_field_flag(parser, flag, f.name + ".", text, nargs="+")
        elif origin in (list, tuple):
            add_field_flag(parser, flag, f.name, text, nargs="+")
        else:
            add_field_flag(parser, flag, f.name, text)


def config_from_args(cls: type[T], args: argparse.Namespace, base: T | None = None) -> T:
    """The config `add_config_arguments` describes: defaults (or `base`) <- --config <- --set and field flags."""
    return load_config(cls, args.config, args.overrides, base=base)
