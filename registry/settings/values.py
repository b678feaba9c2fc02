"""One setting's declaration (`setting`), its place in the tree (`Leaf`, `walk`) and how a value
from YAML, the environment or a flag becomes its type (`coerce`): the parts every source shares."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ENV_PREFIX = "REGISTRY_"
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
# Go's duration syntax, as Distribution writes times (`interval: 10s`, `age: 168h`, `1h30m`), and days
# and weeks besides, as retention rules and `registry gc --grace` are written (`30d`, `2w`).
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d|w)")
_DURATION_UNITS = {
    **{"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0},
    **{"d": 86400.0, "w": 7 * 86400.0},
}
# Some 31,700 years: a longer duration is a slip of the keyboard, and would not fit a timedelta.
_LONGEST_DURATION = 1e12


def setting(
    default: Any = dataclasses.MISSING,
    doc: str = "",
    *,
    factory: Any = dataclasses.MISSING,
    positive: bool = False,
    duration: bool = False,
    files: str = "",
) -> Any:
    """A field of the settings tree with what the reference says of it (`doc`), and checks: `positive`
    (0 is no time or no room: refused), `duration` (seconds, also written `90s`, `1h30m` as
    Distribution does), `files` ("one" or "list": files read at start, checked by `serve`)."""
    metadata = {"doc": doc, "positive": positive, "duration": duration, "files": files}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def section(kind: type, doc: str) -> Any:
    """A field holding a section (a frozen dataclass of settings), documented in the reference."""
    return dataclasses.field(default_factory=kind, metadata={"doc": doc})


@dataclasses.dataclass(frozen=True, slots=True)
class Leaf:
    """One setting of the tree: its path from the root, type, default and declaration, and the names
    derived from the path for YAML, the environment and the command line."""

    path: tuple[str, ...]
    kind: Any
    default: Any
    metadata: Mapping[str, Any]

    @property
    def key(self) -> str:
        return ".".join(self.path)

    @property
    def env(self) -> str:
        return ENV_PREFIX + "_".join(self.path).upper()

    @property
    def dest(self) -> str:
        return "_".join(self.path)

    @property
    def flag(self) -> str:
        return "--" + self.dest.replace("_", "-")

    @property
    def scalar(self) -> bool:
        return is_scalar(self.kind)

    @property
    def doc(self) -> str:
        return str(self.metadata.get("doc", ""))

    @property
    def positive(self) -> bool:
        return bool(self.metadata.get("positive"))

    @property
    def duration(self) -> bool:
        return bool(self.metadata.get("duration"))

    @property
    def files(self) -> str:
        return str(self.metadata.get("files", ""))


def is_section(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def _bare(kind: Any) -> Any:
    if isinstance(kind, types.UnionType):
        return next(k for k in typing.get_args(kind) if k is not type(None))
    return kind


def is_scalar(kind: Any) -> bool:
    return _bare(kind) in (str, int, float, bool, Path, Duration)


def default_of(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def walk(cls: type, prefix: tuple[str, ...] = ()) -> list[Leaf]:
    """Every leaf under `cls`, in declaration order."""
    hints = typing.get_type_hints(cls)
    found: list[Leaf] = []
    for field in dataclasses.fields(cls):
        kind, path = hints[field.name], (*prefix, field.name)
        if is_section(kind):
            found.extend(walk(kind, path))
        else:
            found.append(Leaf(path, kind, default_of(field), field.metadata))
    return found


def sections(cls: type, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """Every section under `cls` (its path and documentation), in declaration order."""
    hints = typing.get_type_hints(cls)
    found: list[tuple[tuple[str, ...], str]] = []
    for field in dataclasses.fields(cls):
        if is_section(hints[field.name]):
            path = (*prefix, field.name)
            found.append((path, str(field.metadata.get("doc", ""))))
            found.extend(sections(hints[field.name], path))
    return found


def leaf_value(settings: object, path: tuple[str, ...]) -> Any:
    for name in path:
        settings = getattr(settings, name)
    return settings


def check_range(leaf: Leaf, value: object) -> str | None:
    """Every number a setting holds has a range: a negative, infinite or NaN one (or 0, where 0 would
    mean no time or no room at all) is a mistake, never a mode."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0 or (value == 0 and leaf.positive):
        bound = "above 0" if leaf.positive else "0 or more"
        return f"setting {leaf.key!r} must be a number {bound}, not {value!r}"
    return None


def parse_duration(text: str) -> float | None:
    """Seconds in `text`: a number of them (`90`, `1.5`) or a Go duration, days and weeks allowed (`250ms`,
    `1h30m`, `7d`, `2w`). None when it is neither, or is negative or absurdly long: every setting and flag
    that takes a duration reads it here, and says in its own words what to write instead."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        parts = list(_DURATION_PART.finditer(text))
        if not parts or "".join(part[0] for part in parts) != text:
            return None
        seconds = sum(float(part[1]) * _DURATION_UNITS[part[2]] for part in parts)
    return seconds if 0 <= seconds < _LONGEST_DURATION else None  # NaN fails both


class Duration(float):
    """Seconds, read from a number or a Go duration (`500ms`, `1m30s`): the type of the fields of
    records (a webhook endpoint's `timeout`, say) that Distribution writes as durations; a leaf of the
    tree says the same with `setting(duration=True)`."""

    MISTAKE = "{!r} is not a duration: write seconds (30) or a Go duration (500ms, 1m30s)"

    def __new__(cls, value: object = 0.0) -> Duration:
        if isinstance(value, str):
            seconds = parse_duration(value)
            if seconds is None:
                raise ValueError(cls.MISTAKE.format(value))
            return super().__new__(cls, seconds)
        return super().__new__(cls, value)  # type: ignore[arg-type]


def coerce(leaf: Leaf, value: Any) -> Any:
    """`value` (YAML data, or text from the environment or a flag) as `leaf`'s type."""
    if leaf.duration and isinstance(value, str):
        seconds = parse_duration(value)
        if seconds is None:
            raise ValueError(f"setting {leaf.key!r}: {Duration.MISTAKE.format(value)}")
        value = round(seconds) if _bare(leaf.kind) is int else seconds
    return _coerce(leaf.key, leaf.kind, value)


def _coerce(name: str, kind: Any, value: Any) -> Any:
    kind = _bare(kind)
    if not is_scalar(kind):
        return _coerce_structure(name, kind, value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()  # YAML reads yes/no/on/off as booleans, 1/0 as numbers
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        raise ValueError(f"setting {name!r}: expected true or false (yes/no, on/off, 1/0), not {value!r}")
    if kind in (int, float, Duration) and (
        isinstance(value, bool) or (kind is int and isinstance(value, float))
    ):
        raise ValueError(f"setting {name!r}: expected a whole number, not {value!r}")
    if kind in (str, Path) and isinstance(value, Mapping | list):
        raise ValueError(f"setting {name!r}: expected a single value, not {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        if kind is Duration:  # its message says how to write one
            raise ValueError(f"setting {name!r}: {exc}") from None
        raise ValueError(f"setting {name!r}: cannot read {value!r} as {kind.__name__}") from exc


def _coerce_structure(name: str, kind: Any, value: Any) -> Any:
    """A list (`tuple[X, ...]`), mapping (`dict[str, X]`) or record (a dataclass) setting, from YAML
    data or from YAML/JSON text (the environment, a flag); a list of words may also be comma-separated."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if isinstance(value, str):
        text = value.strip()
        if origin is tuple and args[0] is str and not text.startswith("["):
            value = [word.strip() for word in text.split(",") if word.strip()]
        else:
            try:
                value = yaml.safe_load(text) if text else None
            except yaml.YAMLError:
                raise ValueError(f"setting {name!r}: cannot read {text!r} as YAML or JSON") from None
    if origin is tuple:
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            raise ValueError(f"setting {name!r}: expected a list, not {value!r}")
        return tuple(_coerce(f"{name}[{i}]", args[0], item) for i, item in enumerate(value))
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError(f"setting {name!r}: expected a mapping, not {value!r}")
        return {str(key): _coerce(f"{name}.{key}", args[1], item) for key, item in value.items()}
    if is_section(kind):
        return _coerce_record(name, kind, value)
    raise TypeError(f"setting {name!r} has a type settings cannot read: {kind!r}")


def _coerce_record(name: str, kind: Any, value: Any) -> Any:
    if is_section(type(value)) and isinstance(value, kind):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"setting {name!r}: expected a mapping, not {value!r}")
    hints = typing.get_type_hints(kind)
    fields = {f.name for f in dataclasses.fields(kind)}
    given = {str(key).replace("-", "_"): item for key, item in value.items()}
    unknown = sorted(set(given) - fields)
    if unknown:
        close = difflib.get_close_matches(unknown[0], fields, n=1)
        raise ValueError(
            f"setting {name!r}: unknown key {unknown[0]!r}"
            + (f": did you mean {close[0]!r}?" if close else "")
        )
    missing = [f.name for f in dataclasses.fields(kind) if default_of(f) is dataclasses.MISSING]
    missing = [key for key in missing if key not in given]
    if missing:
        raise ValueError(f"setting {name!r}: key {missing[0]!r} is required")
    return kind(**{key: _coerce(f"{name}.{key}", hints[key], item) for key, item in given.items()})


def plain(value: Any) -> Any:
    """A structured setting as YAML/JSON data again (for the environment of worker processes)."""
    if is_section(type(value)):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return str(value) if isinstance(value, Path) else value


def replace_tree(obj: Any, nested: Mapping[str, Any]) -> Any:
    """`obj` with the nested mapping of new leaf values put in place, section by section."""
    changes = {
        name: replace_tree(getattr(obj, name), value)
        if isinstance(value, dict) and is_section(type(getattr(obj, name)))
        else value
        for name, value in nested.items()
    }
    return dataclasses.replace(obj, **changes)
