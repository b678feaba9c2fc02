"""The Dockerfile parser, variable expansion and .dockerignore rules, on their own."""

from __future__ import annotations

import pytest

from registry.build.errors import DockerfileError
from registry.build.ignore import IgnoreRules
from registry.build.parser import parse
from registry.build.words import process_word, process_words


def test_line_continuations_and_comments() -> None:
    dockerfile = parse(
        "FROM busybox\n"
        "RUN echo a \\\n"
        "# a comment inside the instruction is dropped\n"
        "\n"
        "    && echo b\n"
        'CMD ["sh"]\n'
    )
    run, cmd = dockerfile.stages[0].instructions
    assert (run.keyword, run.line, run.args) == ("RUN", 2, "echo a     && echo b")
    assert run.exec_form is None
    assert (cmd.line, cmd.exec_form) == (6, ["sh"])


def test_escape_directive_changes_the_continuation_character() -> None:
    dockerfile = parse("# escape=`\nFROM busybox\nRUN echo C:\\path `\n  done\n")
    assert dockerfile.escape == "`"
    assert dockerfile.stages[0].instructions[0].args == "echo C:\\path   done"


def test_a_directive_after_an_instruction_is_a_comment() -> None:
    dockerfile = parse("FROM busybox\n# escape=`\nRUN echo a \\\n b\n")
    assert dockerfile.escape == "\\"
    assert dockerfile.stages[0].instructions[0].args == "echo a  b"


def test_json_and_shell_forms() -> None:
    instructions = (
        parse(
            'FROM busybox\nENTRYPOINT ["/bin/sh", "-c"]\nCMD echo hi\n'
            'RUN [ -f /etc/passwd ]\nSHELL ["/bin/ash", "-c"]\n'
        )
        .stages[0]
        .instructions
    )
    assert [i.exec_form for i in instructions] == [["/bin/sh", "-c"], None, None, ["/bin/ash", "-c"]]
    assert instructions[2].args == "[ -f /etc/passwd ]"  # not JSON: the shell's test command


def test_arg_before_from_and_stages() -> None:
    dockerfile = parse(
        "ARG BASE=busybox\nARG TAG\nFROM ${BASE}:${TAG} AS build\nRUN true\n"
        "FROM --platform=linux/amd64 scratch\nCOPY --from=build /x /x\n"
    )
    assert [arg.args for arg in dockerfile.global_args] == ["BASE=busybox", "TAG"]
    first, second = dockerfile.stages
    assert (first.base, first.name, second.platform) == ("${BASE}:${TAG}", "build", "linux/amd64")
    assert second.instructions[0].flags == {"from": "build"}
    assert dockerfile.stage("build") is first and dockerfile.stage("1") is second
    assert dockerfile.stage("missing") is None


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("FROM busybox\nRUN true\nFOO bar\n", 3, "unknown instruction: FOO"),
        ("RUN true\nFROM busybox\n", 1, "before the first FROM"),
        ("# only a comment\n", 1, "no FROM instruction"),
        ("FROM busybox\n\nCOPY onlyone\n", 3, "requires at least two arguments"),
        ("FROM a AS x\nFROM b AS x\n", 2, "duplicate stage name"),
        ("FROM a b\n", 1, "FROM requires either one or three arguments"),
        ("FROM busybox\nCOPY --frm=x a b\n", 2, "unknown flag: --frm"),
        ("FROM busybox\nSHELL /bin/sh -c\n", 2, "SHELL requires the arguments to be in JSON form"),
        ("FROM busybox\nONBUILD FROM x\n", 2, "isn't allowed as an ONBUILD trigger"),
        ("FROM busybox\nRUN a \\\n b\nHEALTHCHECK SOMETIMES x\n", 4, "HEALTHCHECK"),
        ("FROM busybox\nWORKDIR\n", 2, "WORKDIR requires at least one argument"),
    ],
)
def test_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(DockerfileError) as raised:
        parse(text, "app/Dockerfile")
    assert raised.value.line == line
    assert str(raised.value).startswith(f"app/Dockerfile:{line}: ")
    assert message in str(raised.value)


def test_variable_expansion() -> None:
    env = {"A": "one", "EMPTY": "", "SPACED": "x y"}
    assert (
        process_word("$A-${A}_${MISSING:-dflt}${A:+alt}${EMPTY:-e}${EMPTY-kept}", env) == "one-one_dfltalte"
    )
    assert process_word("'$A' \"$A\" \\$A", env) == "$A one $A"
    assert process_words("A=\"$SPACED\" B='q r' C=plain", env) == ["A=x y", "B=q r", "C=plain"]
    assert process_words('"" x', env) == ["", "x"]
    with pytest.raises(ValueError, match="matching double-quote"):
        process_words('"open', env)


def test_dockerignore_rules() -> None:
    rules = IgnoreRules(
        ["# comment", "*.md", "!README.md", "/build", "**/*.tmp", "secrets/**", "!secrets/ok"]
    )
    assert rules.excluded("notes.md") and not rules.excluded("README.md")
    assert not rules.excluded("docs/notes.md")  # `*` stays in one path component
    assert rules.excluded("build") and rules.excluded("build/out/x.o")
    assert rules.excluded("a/b/c.tmp") and rules.excluded("c.tmp")
    assert rules.excluded("secrets/key") and not rules.excluded("secrets/ok")
    assert not rules.excluded("src/main.py")
