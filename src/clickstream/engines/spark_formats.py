"""strftime formats as Spark reads them: Java DateTimeFormatter patterns, and regular expressions for the text
DuckDB's strptime accepts (the Spark engine checks the shape first, so both engines accept the same text).

Plain Python: the config's check of the codes and the tests use it without starting Spark.
"""
from __future__ import annotations

import re

_STRFTIME_TO_JAVA = {
    "Y": "yyyy", "y": "yy", "m": "MM", "d": "dd", "H": "HH", "I": "hh", "M": "mm", "S": "ss",
    "f": "SSSSSS", "p": "a", "b": "MMM", "B": "MMMM", "j": "DDD", "%": "%",
}
# DuckDB's strptime (like Python's) reads digit fields with fewer digits than it writes: "2024-1-5 9:05:00"
# parses with "%Y-%m-%d %H:%M:%S". A one-letter Java pattern reads any number of digits instead.
_LENIENT_JAVA = {"Y": "y", "m": "M", "d": "d", "H": "H", "I": "h", "M": "m", "S": "s", "j": "D"}
# code -> (regex when the next piece is a digit field too, regex otherwise)
_SHAPE = {
    "Y": ("[0-9]{4}", "[0-9]{1,4}"), "y": ("[0-9]{2}", "[0-9]{2}"), "m": ("[0-9]{2}", "[0-9]{1,2}"),
    "d": ("[0-9]{2}", "[0-9]{1,2}"), "H": ("[0-9]{2}", "[0-9]{1,2}"), "I": ("[0-9]{2}", "[0-9]{1,2}"),
    "M": ("[0-9]{2}", "[0-9]{1,2}"), "S": ("[0-9]{2}", "[0-9]{1,2}"), "f": ("[0-9]{6}", "[0-9]{1,6}"),
    "j": ("[0-9]{3}", "[0-9]{1,3}"), "p": ("[AaPp][Mm]",) * 2, "b": ("[A-Za-z]+",) * 2,
    "B": ("[A-Za-z]+",) * 2, "%": ("%",) * 2,
}
_DIGIT_CODES = set("YymdHIMSfj")
_REGEX_SPECIAL = set("\\^$.|?*+()[]{}-")



def _java_literal(text: str) -> str:
    """Literal text in a Java pattern: quoted where it holds letters or quotes, which Java would read as fields."""
    return "'" + text.replace("'", "''") + "'" if re.search(r"[A-Za-z']", text) else text


def _strftime_tokens(fmt: str) -> list[tuple[bool, str]]:
    """(is_code, text) pieces of a strftime format: `%Y-%m` -> (True, 'Y'), (False, '-'), (True, 'm')."""
    tokens: list[tuple[bool, str]] = []
    i = 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            if fmt[i + 1] not in _STRFTIME_TO_JAVA:
                raise ValueError(f"timestamp format {fmt!r}: %{fmt[i + 1]} is not supported")
            tokens.append((True, fmt[i + 1]))
            i += 2
        else:
            tokens.append((False, fmt[i]))
            i += 1
    return tokens


def _variable_width(tokens: list[tuple[bool, str]], index: int) -> bool:
    """A digit field may vary in width unless a digit field follows it directly (`%Y%m%d`)."""
    following = tokens[index + 1] if index + 1 < len(tokens) else None
    return not (following is not None and following[0] and following[1] in _DIGIT_CODES)


def strftime_to_java(fmt: str, lenient_widths: bool = False) -> str:
    """Translate a strftime format into a Java DateTimeFormatter pattern (letters outside codes are quoted).

    With `lenient_widths`, digit fields read as many digits as they are given (`strftime_shape` bounds
    them) and a run of whitespace becomes one space: for text whose whitespace runs were made one space.
    """
    tokens = _strftime_tokens(fmt)
    out: list[str] = []
    literal: list[str] = []

    def flush() -> None:
        if literal:
            out.append(_java_literal("".join(literal)))
            literal.clear()

    for index, (is_code, text) in enumerate(tokens):
        if is_code:
            flush()
            lenient = lenient_widths and text in _LENIENT_JAVA and _variable_width(tokens, index)
            out.append(_LENIENT_JAVA[text] if lenient else _STRFTIME_TO_JAVA[text])
        elif lenient_widths and text.isspace():
            if not literal or literal[-1] != " ":
                literal.append(" ")
        else:
            literal.append(text)
    flush()
    return "".join(out)


def strftime_shape(fmt: str) -> str:
    """A regular expression (same meaning in Java and RE2) for the text DuckDB's strptime accepts with `fmt`.

    Digit fields take 1-2 digits (years 1-4, fractions 1-6, days of the year 1-3), a space of the format
    takes any run of whitespace, and whitespace may surround the value. An engine whose parser is stricter
    or laxer checks this shape first, so that every engine accepts the same text.
    """
    tokens = _strftime_tokens(fmt)
    out = [r"^\s*"]
    for index, (is_code, text) in enumerate(tokens):
        if is_code:
            fixed, variable = _SHAPE[text]
            out.append(variable if _variable_width(tokens, index) else fixed)
        elif text.isspace():
            if out[-1] != r"\s+":
                out.append(r"\s+")
        else:
            out.append("\\" + text if text in _REGEX_SPECIAL else text)
    out.append(r"\s*$")
    return "".join(out)


_EXACT_CODES = set("YymdHMSf")


def strftime_exact_shape(fmt: str) -> str | None:
    """A regular expression for the canonical text of `fmt`: every digit field at its full width, nothing
    around the value, the format's own separators. None when `fmt` has a code other than Y y m d H M S f.

    Text of this shape reads the same with `strftime_to_java(fmt)` as with the lenient pattern after
    `strftime_shape`, so an engine can take it first, as the cheaper way to the same value.
    """
    tokens = _strftime_tokens(fmt)
    if any(is_code and text not in _EXACT_CODES for is_code, text in tokens):
        return None
    out = ["^"]
    for is_code, text in tokens:
        if is_code:
            out.append(_SHAPE[text][0])
        else:
            out.extend("\\" + c if c in _REGEX_SPECIAL else c for c in text)
    out.append("$")
    return "".join(out)
