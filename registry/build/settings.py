"""The instructions that only change the image config: ENV, LABEL, CMD, ENTRYPOINT, EXPOSE, VOLUME, USER,
WORKDIR (its config half), STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD and MAINTAINER, as Docker applies
them to the `config` section (and `author`)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from registry.build.errors import BuildError
from registry.build.parser import Instruction, exec_form
from registry.build.state import ImageState
from registry.build.words import process_word, process_words

DEFAULT_SHELL: Final = ["/bin/sh", "-c"]
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS: Final = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_HEALTH_FLAGS: Final = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                        "start-interval": "StartInterval"}  # fmt: skip


@dataclass
class StageFlags:
    """What a stage's earlier instructions did that changes how later ones apply."""

    cmd_set: bool = False  # a CMD in this stage: ENTRYPOINT keeps it (else it drops the base's CMD)


def command(instruction: Instruction, state: ImageState) -> list[str]:
    """The exec form as written, or the shell form under SHELL (`/bin/sh -c` unless changed)."""
    if instruction.exec_form is not None:
        return list(instruction.exec_form)
    return [*(state.settings.get("Shell") or DEFAULT_SHELL), instruction.args]


def _pairs(instruction: Instruction, env: Mapping[str, str], escape: str) -> list[tuple[str, str]]:
    """`K=V ...`, or the older `K V` (one pair, the rest of the line its value)."""
    words = process_words(instruction.args, env, escape)
    if words and "=" not in words[0]:
        name, _, rest = instruction.args.strip().partition(" ")
        if not rest.strip():
            raise BuildError(f"{instruction.keyword} names {name!r} but gives it no value")
        return [(process_word(name, env, escape), process_word(rest.strip(), env, escape))]
    pairs = []
    for word in words:
        name, equals, value = word.partition("=")
        if not equals or not name:
            raise BuildError(f"{instruction.keyword}: {word!r} is not NAME=VALUE")
        pairs.append((name, value))
    return pairs


def _duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds, as HEALTHCHECK's options are written (`30s`, `1m30s`)."""
    if not text or _DURATION.sub("", text):
        raise BuildError(f"invalid duration {text!r} (write 30s, 1m30s, 500ms, ...)")
    return sum(int(float(number) * _UNITS[unit]) for number, unit in _DURATION.findall(text))


def _healthcheck(instruction: Instruction) -> dict[str, Any]:
    kind, _, rest = instruction.args.strip().partition(" ")
    if kind.upper() == "NONE":
        return {"Test": ["NONE"]}
    rest = rest.strip()
    written = exec_form("CMD", rest, instruction.line, "Dockerfile")
    test = ["CMD", *written] if written is not None else ["CMD-SHELL", rest]
    check: dict[str, Any] = {"Test": test}
    for flag, field in _HEALTH_FLAGS.items():
        if flag in instruction.flags:
            check[field] = _duration(instruction.flags[flag])
    if "retries" in instruction.flags:
        if not instruction.flags["retries"].isdigit():
            raise BuildError(f"invalid --retries {instruction.flags['retries']!r}: a number is needed")
        check["Retries"] = int(instruction.flags["retries"])
    return check


def _ports(words: list[str]) -> list[str]:
    ports = []
    for word in words:
        port, _, protocol = word.partition("/")
        low, _, high = port.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise BuildError(f"invalid port {word!r} in EXPOSE")
        for number in range(int(low), int(high or low) + 1):
            ports.append(f"{number}/{(protocol or 'tcp').lower()}")
    return ports


def workdir(state: ImageState, text: str) -> str:
    """The new WorkingDir: a relative path is taken from the current one."""
    return posixpath.normpath(posixpath.join(state.settings.get("WorkingDir") or "/", text))


def apply(
    state: ImageState, flags: StageFlags, instruction: Instruction, env: Mapping[str, str], escape: str
) -> None:
    """Apply a config-only instruction to `state` (WORKDIR's folder, if missing, is the builder's job)."""
    settings = state.settings
    args = instruction.args
    match instruction.keyword:
        case "ENV":
            for name, value in _pairs(instruction, env, escape):
                state.set_env(name, value)
        case "LABEL":
            labels = settings.get("Labels") or {}
            labels.update(_pairs(instruction, env, escape))
            settings["Labels"] = labels
        case "MAINTAINER":
            state.config["author"] = process_word(args, env, escape)
        case "CMD":
            settings["Cmd"] = command(instruction, state)
            flags.cmd_set = True
        case "ENTRYPOINT":
            settings["Entrypoint"] = command(instruction, state) or None
            if not flags.cmd_set:  # Docker: a new ENTRYPOINT drops the CMD the base image had
                settings["Cmd"] = None
        case "EXPOSE":
            exposed = settings.get("ExposedPorts") or {}
            exposed.update({port: {} for port in _ports(process_words(args, env, escape))})
            settings["ExposedPorts"] = exposed
        case "VOLUME":
            paths = (
                instruction.exec_form
                if instruction.exec_form is not None
                else process_words(args, env, escape)
            )
            if not all(paths):
                raise BuildError("VOLUME specified can not be an empty string")
            volumes = settings.get("Volumes") or {}
            volumes.update({path: {} for path in paths})
            settings["Volumes"] = volumes
        case "USER":
            settings["User"] = process_word(args, env, escape)
        case "WORKDIR":
            settings["WorkingDir"] = workdir(state, process_word(args, env, escape))
        case "STOPSIGNAL":
            settings["StopSignal"] = process_word(args, env, escape)
        case "HEALTHCHECK":
            settings["Healthcheck"] = _healthcheck(instruction)
        case "SHELL":
            settings["Shell"] = instruction.exec_form
        case "ONBUILD":
            settings["OnBuild"] = [*(settings.get("OnBuild") or []), args]
        case _:
            raise BuildError(f"{instruction.keyword} is not a config instruction")
