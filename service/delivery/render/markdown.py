"""Markdown that says exactly what the event says: every value printed into a Markdown template
is escaped, as HTML templates autoescape, so a posting titled `*URGENT* [apply](http://…)`
shows those characters instead of becoming bold text and a link.

The escapes work in CommonMark (Slack, Discord, Telegram through Apprise's dialects, a webhook's
reader) and in Python-Markdown (what Apprise's Matrix plugin renders with): backslashes before
the characters both treat as markup, `&lt;`/`&gt;` for angle brackets (raw HTML passes through
Python-Markdown otherwise), and a backslash before what would start a block at a line's start.
"""

from __future__ import annotations

import re

_INLINE = re.compile(r"([\\`*_\[\]])")
_ANY = re.compile(r"[\\`*_\[\]<>]|^\s*(?:[#+\-]|\d+[.)])", re.MULTILINE)
_BLOCK_START = re.compile(r"^(\s*)([#+\-]|\d+[.)])", re.MULTILINE)
_URL_UNSAFE = str.maketrans({" ": "%20", "(": "%28", ")": "%29", "<": "%3C", ">": "%3E"})


class MarkdownText(str):
    """Markdown already made safe (an escaped value, a link): printed as it is."""

    __slots__ = ()


def escape(value: object) -> MarkdownText:
    if isinstance(value, MarkdownText):
        return value
    text = str(value)
    if not _ANY.search(text):
        return MarkdownText(text)  # most values: one scan instead of four
    text = _INLINE.sub(r"\\\1", text).replace("<", "&lt;").replace(">", "&gt;")
    return MarkdownText(_BLOCK_START.sub(_escape_block_start, text))


def _escape_block_start(match: re.Match[str]) -> str:
    lead, marker = match.group(1), match.group(2)
    if marker[0].isdigit():
        return f"{lead}{marker[:-1]}\\{marker[-1]}"
    return f"{lead}\\{marker}"


def link(label: object, url: object) -> MarkdownText:
    """`[label](url)`, label escaped; the URL with the characters that would end it encoded.

    Without a URL the label alone, escaped, so a template can link whatever it is given.
    """
    if not url:
        return escape(label)
    target = str(url).translate(_URL_UNSAFE)
    return MarkdownText(f"[{escape(label)}]({target})")


def finalize(value: object) -> object:
    """Jinja's `finalize` for Markdown templates: escape every printed value not already safe."""
    if isinstance(value, MarkdownText):
        return value
    if hasattr(value, "__markdown__"):
        return MarkdownText(value.__markdown__())
    return escape(value)
