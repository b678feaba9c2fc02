"""Variable substitution and word splitting in Dockerfile arguments, as Docker's shell lexer does them.

Instructions other than RUN, CMD and ENTRYPOINT (whose text the shell reads later) get `$NAME`,
`${NAME}`, `${NAME:-default}` and `${NAME:+alternative}` replaced from the build's ENV and ARG values.
Quotes group words and are removed; the escape character (`\\` or the `escape` directive's) keeps the
next character literal. Single quotes keep `$` literal, double quotes do not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Scan:
    """One pass over `text`: words (or one word) with quotes removed and variables replaced."""

    def __init__(self, text: str, env: Mapping[str, str], escape: str, split: bool) -> None:
        self.text = text
        self.env = env
        self.escape = escape
        self.split = split
        self.at = 0
        self.words: list[str] = []
        self.current: list[str] = []
        self.started = False  # a word is under way even if empty so far (`""` is a word)

    def run(self) -> list[str]:
        while self.at < len(self.text):
            char = self.text[self.at]
            self.at += 1
            if self.split and char.isspace():
                self._end_word()
            elif char == self.escape:
                self._literal_next()
            elif char == "'":
                self._single_quoted()
            elif char == '"':
                self._double_quoted()
            elif char == "$":
                self._add(self._variable())
            else:
                self._add(char)
        self._end_word()
        return self.words

    def _add(self, text: str) -> None:
        self.current.append(text)
        self.started = True

    def _end_word(self) -> None:
        if self.started:
            self.words.append("".join(self.current))
        self.current = []
        self.started = False

    def _literal_next(self) -> None:
        if self.at < len(self.text):
            self._add(self.text[self.at])
            self.at += 1
        else:
            self._add(self.escape)

    def _single_quoted(self) -> None:
        end = self.text.find("'", self.at)
        if end < 0:
            raise ValueError(
                f"unexpected end of statement while looking for matching single-quote in {self.text!r}"
            )
        self._add(self.text[self.at : end])
        self.at = end + 1

    def _double_quoted(self) -> None:
        self.started = True
        while self.at < len(self.text):
            char = self.text[self.at]
            self.at += 1
            if char == '"':
                return
            if (
                char == self.escape
                and self.at < len(self.text)
                and self.text[self.at] in ('"', "$", self.escape)
            ):
                self._add(self.text[self.at])
                self.at += 1
            elif char == "$":
                self._add(self._variable())
            else:
                self._add(char)
        raise ValueError(
            f"unexpected end of statement while looking for matching double-quote in {self.text!r}"
        )

    def _variable(self) -> str:
        """After a `$`: the value it names, or a literal `$` when no name follows."""
        if self.text.startswith("{", self.at):
            return self._braced()
        match = _NAME.match(self.text, self.at)
        if not match:
            return "$"
        self.at = match.end()
        return self.env.get(match.group(), "")

    def _braced(self) -> str:
        end = self._closing_brace()
        body = self.text[self.at + 1 : end]
        self.at = end + 1
        match = _NAME.match(body)
        if not match:
            raise ValueError(f"bad substitution: ${{{body}}}")
        name, rest = match.group(), body[match.end() :]
        value = self.env.get(name)
        if not rest:
            return value or ""
        operator = rest[:2] if rest.startswith(":") else rest[:1]
        word = process_word(rest[len(operator) :], self.env, self.escape)
        match operator:
            case ":-":
                return value or word
            case "-":
                return word if value is None else value
            case ":+":
                return word if value else ""
            case "+":
                return "" if value is None else word
        raise ValueError(f"unsupported modifier {operator!r} in ${{{body}}}")

    def _closing_brace(self) -> int:
        depth = 0
        for index in range(self.at, len(self.text)):
            if self.text[index] == "{":
                depth += 1
            elif self.text[index] == "}":
                depth -= 1
                if depth == 0:
                    return index
        raise ValueError(f"missing '}}' in {self.text!r}")


def process_word(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """`text` as one word: variables replaced, quotes removed, spaces kept (WORKDIR, USER, ...)."""
    return "".join(_Scan(text, env, escape, split=False).run())


def process_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """`text` split into words at unquoted spaces, each processed as `process_word` does."""
    return _Scan(text, env, escape, split=True).run()
