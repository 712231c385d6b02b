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


# A conversation's turns as bubbles: ours are the only tags and inline styles, each turn's text is `markdown_html`.
_TURN_STYLE = {
    "user": "margin:0 0 8px 15%;background:var(--color-accent-soft);",
    "assistant": "margin:0 15% 8px 0;background:var(--background-fill-secondary);",
    "system": "margin:0 8% 8px 8%;font-style:italic;background:var(--background-fill-primary);",
}
_BUBBLE = "border:1px solid var(--border-color-primary);border-radius:12px;padding:6px 12px;"


def turns_html(messages: list[dict] | tuple[dict, ...]) -> str:
    """Conversation turns as chat bubbles (the user's on the right), each named by its role, its text rendered by
    `markdown_html`. Roles outside system/user/assistant are shown as the assistant's, still named."""
    bubbles = []
    for m in messages:
        role = m["role"] if m["role"] in _TURN_STYLE else "assistant"
        bubbles.append(f'<div class="turn turn-{role}" style="{_BUBBLE}{_TURN_STYLE[role]}">'
                       f'<div class="turn-role" style="font-size:0.8em;opacity:0.7">{html.escape(str(m["role"]))}'
                       f'</div>{markdown_html(m["content"])}</div>')
    return f'<div class="turns">{"".join(bubbles)}</div>'


def plain_html(text: str | None) -> str:
    """`text` as HTML that shows exactly its characters (a name, a pair id)."""
    return html.escape(text or "")
