"""Data values shown to people as text, never interpreted: by a terminal, by a Markdown renderer, by HTML.

Product ids, file names, event types and CSV column names come from the input and can hold anything: an ANSI
escape that clears the screen, a newline that forges a second log line, a `<script>` in the report.
"""
from __future__ import annotations

import html
import re
import unicodedata

# Control characters (C0, DEL, C1), format characters (bidi overrides and isolates, zero-width characters,
# the byte order mark), line and paragraph separators, and lone surrogates (undecodable bytes).
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# What starts inline Markdown (emphasis, code, links, strikethrough, math, table cells, a heading's closing
# #s, raw HTML and entities) and the backslash itself, each escaped with a backslash, which reads better in the
# plain file than an HTML entity. An `_` between two letters or digits starts nothing (`view_rank` stays as written).
_MARKDOWN_SPECIAL = re.compile(r"[\\`*\[\]|~$#<>&]|(?<![^\W_])_|_(?![^\W_])")
# GitHub turns `scheme://...` and `www.` into links even without <>: an escaped `:` or `.` stops it.
_BARE_LINK = re.compile(r"(?i):(?=//)|(?<=www)\.")


def _visible(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escape_terminal(text: str) -> str:
    """`text` on one line with every control, format and separator character shown as an escape (`\\x1b`, `\\n`).

    A backslash stays itself, so paths read as typed.
    """
    if text.isprintable():  # the common case; every character escaped below is non-printable
        return text
    return "".join(
        char if char.isprintable() or unicodedata.category(char) not in _HIDDEN_CATEGORIES else _visible(char)
        for char in text
    )


def escape_terminal_lines(text: str) -> str:
    """Several lines (a traceback): each line escaped, the line breaks between them kept."""
    return "\n".join(escape_terminal(line) for line in text.split("\n"))


def escape_markup(text: str) -> str:
    """`text` for HTML or SVG markup, as a text node or a quoted attribute value: shown as `escape_terminal` shows
    it, with `& < > " '` as entities (the report's charts; the page's template escapes through Jinja2)."""
    return html.escape(escape_terminal(text), quote=True)


def escape_markdown(text: str) -> str:
    """`text` for a GitHub-flavoured Markdown table cell or heading, rendered as the literal text.

    Cells and headings hold inline Markdown only, so a leading `-`, `+` or `1.` starts no list there; a `#` is
    escaped everywhere, since trailing #s would close a heading.
    """
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\g<0>", escape_terminal(text))
    return _BARE_LINK.sub(r"\\\g<0>", escaped)


def shorten(text: str, limit: int = 200) -> str:
    """`text` cut to `limit` characters, with a marker saying how many were cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"
