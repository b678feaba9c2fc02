"""Dockerfile text into stages of instructions, checked for shape before anything runs.

Parsing follows Docker's: parser directives (`# escape=`` ` ``, `# syntax=`) only at the very top; a line
ending in the escape character continues on the next; comment lines are dropped, also inside a
continued instruction; keywords are case-insensitive; `--flag=value` options come first; the JSON
(exec) form is recognised where Docker takes it. Variables are not expanded here: that needs the build's
ARG and ENV values, so the executors do it. Every mistake found here names its line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from registry.build.errors import DockerfileError

INSTRUCTIONS: Final = frozenset(
    {"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
     "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
)  # fmt: skip
FLAGS: Final = {
    "FROM": {"platform"},
    "COPY": {"from", "chown", "chmod", "link"},
    "ADD": {"chown", "chmod", "link", "checksum"},
    "RUN": {"network"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}
JSON_FORMS: Final = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "VOLUME", "COPY", "ADD"})
NOT_ON_BUILD: Final = frozenset({"ONBUILD", "FROM", "MAINTAINER"})
_DIRECTIVE: Final = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*$")
_STAGE_NAME: Final = re.compile(r"[a-z][a-z0-9\-_.]*")
_KEYWORD: Final = re.compile(r"(\S+)\s*(.*)", re.S)


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    args: str  # the text after the keyword and its flags, unexpanded
    line: int  # where the instruction starts
    flags: dict[str, str] = field(default_factory=dict)
    exec_form: list[str] | None = None  # the JSON array, for instructions written in exec form

    @property
    def text(self) -> str:
        """The instruction as Docker prints it in step lines and history."""
        flags = "".join(f"--{name}={value} " for name, value in self.flags.items())
        return f"{self.keyword} {flags}{self.args}".rstrip()


@dataclass
class Stage:
    index: int
    base: str  # unexpanded: may hold global ARGs
    name: str | None
    line: int
    platform: str | None
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    escape: str
    global_args: list[Instruction]  # ARGs before the first FROM
    stages: list[Stage]

    def stage(self, reference: str) -> Stage | None:
        """The stage a `--target`, `COPY --from` or `FROM` names: its name, or its index."""
        for stage in self.stages:
            if stage.name == reference.lower():
                return stage
        if reference.isdigit() and int(reference) < len(self.stages):
            return self.stages[int(reference)]
        return None


def _directives(lines: list[str], name: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        match = _DIRECTIVE.fullmatch(line.strip())
        if not match or match.group(1).lower() not in ("escape", "syntax", "check"):
            break
        key = match.group(1).lower()
        if key in found:
            raise DockerfileError(number, f"only one {key} parser directive can be used", name)
        found[key] = match.group(2)
    escape = found.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(1, f"invalid escape token {escape!r}: it must be \\ or `", name)
    found["escape"] = escape
    return found


def logical_lines(text: str, escape: str) -> Iterator[tuple[int, str]]:
    """(first line number, joined text) of each instruction: continuations joined, comments dropped."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # also inside a continued instruction, as Docker does
        if not pending:
            start = number
        trimmed = raw.rstrip()
        if trimmed.endswith(escape):
            pending.append(trimmed[: -len(escape)])
            continue
        pending.append(raw)
        yield start, "".join(pending)
        pending = []
    if pending:
        yield start, "".join(pending)


def _flags(keyword: str, rest: str, line: int, name: str) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        token, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        flag, equals, value = token[2:].partition("=")
        if flag not in FLAGS.get(keyword, ()):
            raise DockerfileError(line, f"unknown flag: --{flag} (for {keyword})", name)
        flags[flag] = value if equals else "true"
    return flags, rest


def exec_form(keyword: str, rest: str, line: int, name: str) -> list[str] | None:
    if keyword not in JSON_FORMS or not rest.startswith("["):
        if keyword == "SHELL":
            raise DockerfileError(line, "SHELL requires the arguments to be in JSON form", name)
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        value = None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    if keyword == "SHELL":
        raise DockerfileError(line, "SHELL requires the arguments to be in JSON form", name)
    return None  # not JSON after all: shell form, as Docker reads `RUN [ -f x ]`


def parse_instruction(text: str, line: int, name: str = "Dockerfile") -> Instruction:
    keyword, rest = _KEYWORD.fullmatch(text.strip()).groups()  # type: ignore[union-attr]
    keyword = keyword.upper()
    if keyword not in INSTRUCTIONS:
        raise DockerfileError(line, f"unknown instruction: {keyword}", name)
    flags, rest = _flags(keyword, rest, line, name)
    instruction = Instruction(keyword, rest, line, flags, exec_form(keyword, rest, line, name))
    _check(instruction, name)
    return instruction


def _check(instruction: Instruction, name: str) -> None:
    """The shape each instruction needs, so a build fails before its first step rather than midway."""
    keyword, args, line = instruction.keyword, instruction.args, instruction.line
    if not args and keyword not in ("CMD", "ENTRYPOINT"):
        raise DockerfileError(line, f"{keyword} requires at least one argument", name)
    if keyword in ("COPY", "ADD"):
        count = len(instruction.exec_form) if instruction.exec_form is not None else len(args.split())
        if count < 2:
            raise DockerfileError(
                line, f"{keyword} requires at least two arguments: source and destination", name
            )
    elif keyword == "ONBUILD":
        inner = parse_instruction(args, line, name)
        if inner.keyword in NOT_ON_BUILD:
            raise DockerfileError(line, f"{inner.keyword} isn't allowed as an ONBUILD trigger", name)
    elif keyword == "HEALTHCHECK":
        kind = args.split()[0].upper()
        if kind not in ("NONE", "CMD"):
            raise DockerfileError(line, f"unknown type {kind!r} in HEALTHCHECK (try CMD)", name)
        if kind == "NONE" and (len(args.split()) > 1 or instruction.flags):
            raise DockerfileError(line, "HEALTHCHECK NONE takes no other arguments", name)
        if kind == "CMD" and len(args.split()) < 2:
            raise DockerfileError(line, "missing command after HEALTHCHECK CMD", name)


def _stage(instruction: Instruction, index: int, names: set[str], name: str) -> Stage:
    words = instruction.args.split()
    if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
        raise DockerfileError(instruction.line, "FROM requires either one or three arguments", name)
    stage_name = words[2].lower() if len(words) == 3 else None
    if stage_name is not None:
        if not _STAGE_NAME.fullmatch(stage_name):
            raise DockerfileError(instruction.line, f"invalid stage name {words[2]!r}", name)
        if stage_name in names:
            raise DockerfileError(instruction.line, f"duplicate stage name {words[2]!r}", name)
        names.add(stage_name)
    return Stage(index, words[0], stage_name, instruction.line, instruction.flags.get("platform"))


def parse(text: str, name: str = "Dockerfile") -> Dockerfile:
    """The stages of a Dockerfile, or a DockerfileError naming the first line that is wrong."""
    escape = _directives(text.splitlines(), name)["escape"]
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    names: set[str] = set()
    for line, logical in logical_lines(text, escape):
        instruction = parse_instruction(logical, line, name)
        if instruction.keyword == "FROM":
            stages.append(_stage(instruction, len(stages), names, name))
        elif stages:
            stages[-1].instructions.append(instruction)
        elif instruction.keyword == "ARG":
            global_args.append(instruction)
        else:
            raise DockerfileError(
                line, f"{instruction.keyword} before the first FROM (only ARG may come first)", name
            )
    if not stages:
        raise DockerfileError(1, "the Dockerfile has no FROM instruction", name)
    return Dockerfile(escape, global_args, stages)
