"""Untrusted text (prompts, model replies) shown as rendered Markdown that cannot run or fetch anything.

markdown-it turns the text into HTML on the server with raw HTML off (every `<tag>` in the text is escaped and shown
as its characters), images named, not drawn (`![x](url)` shows as `[image: x]`, so nothing is fetched when the page draws it) and its
link check on (`javascript:`, `vbscript:`, `file:` and `data:` links are not made). One parser decides what is
markup, so no gap between a sanitizer's view and the browser's Markdown parser is left to exploit; the Chatbot's own
`sanitize_html` stays on behind it.
"""

import html

from markdown_it import MarkdownIt

# CommonMark plus GitHub's tables and strikethrough; a single newline is a line break, as models write them.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])


def _image_as_text(renderer: object, tokens: list, idx: int, options: object, env: object) -> str:
    """An image is named, not drawn: drawing it would fetch its URL from the reader's browser."""
    token = tokens[idx]
    return html.escape(f"[image: {token.content or 'no description'}]")


_MARKDOWN.add_render_rule("image", _image_as_text)


def markdown_html(text: str | None) -> str:
    """`text` as safe HTML: Markdown rendered, any HTML in it shown as text, images named but not drawn."""
    return _MARKDOWN.render(text or "")


def plain_html(text: str | None) -> str:
    """`text` as HTML that shows exactly its characters (a name, a pair id)."""
    return html.escape(text or "")
