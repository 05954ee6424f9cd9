"""Model output to safe HTML: Markdown rendered, code highlighted, every HTML tag escaped.

Responses are untrusted text: a model (or a poisoned prompt) can write ``<script>`` or
``<img src=x onerror=...>``. markdown-it-py runs with ``html: False`` so raw HTML becomes text,
images are disabled (an image would make the browser fetch a URL of the model's choosing), links
keep markdown-it's URL check (no ``javascript:``) and open nothing by themselves, and Pygments
escapes code as it highlights it. The page's Content-Security-Policy is the second wall.
"""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

HIGHLIGHT_CLASS = "hl"


def _highlight(code: str, lang: str, _attrs: object) -> str:
    """Pygments HTML for a fenced block in a known language; "" lets markdown-it escape it."""
    try:
        lexer = get_lexer_by_name(lang.strip()) if lang.strip() else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return ""
    return str(highlight(code, lexer, HtmlFormatter(nowrap=True)))


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight, "linkify": False})
    md.disable("image")
    return md


def render_markdown(text: str) -> str:
    """Safe HTML of untrusted Markdown (see module doc)."""
    return _markdown().render(text)


@lru_cache(maxsize=1)
def highlight_css() -> str:
    """The stylesheet of the highlighted code (served as a static file, no inline style)."""
    return str(HtmlFormatter().get_style_defs(f".{HIGHLIGHT_CLASS}"))
