"""Hostile text in a real browser: prompts, responses, chat messages, names, file imports and errors carrying HTML,
JS or Markdown tricks. Markdown is rendered (bold, lists, code, tables), but no HTML in the text becomes an element,
no script runs, no image is drawn, and nothing is fetched from a payload's address: neither a made-up host nor a
loopback HTTP server this test starts, on any tab."""

from __future__ import annotations

import http.server
import json
import re
import threading
from collections.abc import Iterator

import pytest

from prefapp.config import AppConfig
from prefapp.models import Policy
from prefapp.service import PrefService
from prefapp.store import Store
from prefapp.ui.app import build_ui
from tests.browser import FIRST_PAIR_MS, TIMEOUT_MS, chromium, free_port, served

MARK = "pwned.invalid"  # any request to this host means a payload was rendered
LOOPBACK_PORT = free_port()
LOOPBACK = f"http://127.0.0.1:{LOOPBACK_PORT}"  # a real server (started below): a fetch would reach it
TYPED = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script><b>bold</b>'
IMPORTED = (f"![x]({LOOPBACK}/md.png) [click](javascript:document.title='pwned') **mdbold** <u>under</u> "
            f"![y](http://{MARK}/md.png)\n\n- item\n\n```\n<img src='{LOOPBACK}/code.png'>\n```")
RESPONSE = f'<iframe src="http://{MARK}/frame"></iframe><a href="http://{MARK}/a">link</a><img src="{LOOPBACK}/raw.png">'
RESPONSE_B = f'<svg onload="document.title=\'pwned\'"></svg><style>body{{background:url({LOOPBACK}/bg)}}</style>'
NAME = "<img src=x onerror=alert(9)>"
PAYLOADS = (TYPED, IMPORTED)

import playwright.sync_api as playwright_api  # noqa: E402
pytestmark = pytest.mark.usefixtures("chromium_installed")


@pytest.fixture
def loopback() -> Iterator[list[str]]:
    """A real HTTP server on 127.0.0.1: the paths it was asked for (a rendered payload would ask)."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", LOOPBACK_PORT), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hits
    server.shutdown()
    server.server_close()


@pytest.fixture
def hostile_service(app_config: AppConfig, demo_policy: Policy, tmp_path) -> Iterator[PrefService]:
    """Only hostile prompts (typed and from a file), one voted pair with hostile responses, a failed round."""
    service = PrefService(app_config, Store(app_config.db_path), demo_policy, seed=0)
    service.add_typed_prompts(TYPED)
    upload = tmp_path / "hostile.jsonl"
    upload.write_text(json.dumps({"prompt": IMPORTED}) + "\n", encoding="utf-8")
    service.import_prompts(upload)
    store = service.store
    pair = store.add_pair(store.next_prompt(), RESPONSE, RESPONSE_B, swapped=False, model_id="demo", adapter_id=None,
                          sampling={}, served_to=NAME)
    store.record_vote(pair.id, "A", NAME)
    round_id = store.start_round(base_model="demo", config={}, export_path=None, n_pairs=1)
    store.fail_round(round_id, RESPONSE_B)
    yield service
    service.close()


@pytest.fixture
def page(hostile_service: PrefService, loopback: list[str]):
    with served(build_ui(hostile_service)) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.hostile_requests, page.dialogs = [], []
        page.on("request", lambda r: (MARK in r.url or LOOPBACK in r.url) and page.hostile_requests.append(r.url))
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        page.goto(url)
        yield page


def rendered(page) -> dict[str, int]:
    """Elements a payload would create if any of its HTML were rendered, or any of its images drawn."""
    selectors = {"img": "img[src='x']", "bold": "b:has-text('bold')", "md image": f"img[src*='{MARK}']",
                 "loopback image": f"img[src*='{LOOPBACK}']", "underline": "u:has-text('under')",
                 "iframe": f"iframe[src*='{MARK}']", "link": f"a[href*='{MARK}'], a[href^='javascript' i]",
                 "svg": "svg[onload]"}
    found = {name: page.locator(sel).count() for name, sel in selectors.items() if page.locator(sel).count()}
    # Text matching skips these two: read them. (gradio's own config script holds the payloads JSON-escaped.)
    for tag, text in (("style", f"url({LOOPBACK}"), ("script", 'document.title="pwned"')):
        count = page.evaluate("([tag, text]) => [...document.querySelectorAll(tag)]"
                              ".filter(e => e.textContent.includes(text)).length", [tag, text])
        if count:
            found[tag] = count
    return found


def clean(page, loopback: list[str]) -> None:
    page.wait_for_timeout(500)  # let any stray fetch start before checking
    assert rendered(page) == {}
    assert page.hostile_requests == [] and loopback == [] and page.dialogs == []
    assert page.title() != "pwned"


def test_hostile_text_is_shown_as_text_everywhere(page, hostile_service: PrefService, loopback: list[str]) -> None:
    expect = playwright_api.expect
    name = page.get_by_label("Your name (annotator)")
    name.fill(NAME)
    name.press("Enter")
    expect(page.locator("#pair-id textarea")).not_to_have_value("", timeout=FIRST_PAIR_MS)
    page.get_by_role("button", name="Undo last vote").click()  # the stored pair, hostile responses, back on screen
    expect(page.locator("#response-a")).to_contain_text(RESPONSE, timeout=TIMEOUT_MS)
    expect(page.locator("#response-b")).to_contain_text(RESPONSE_B)
    prompt = page.locator("#prompt")
    expect(prompt).to_contain_text(re.compile("mdbold|" + re.escape(TYPED)))
    clean(page, loopback)
    page.get_by_role("button", name="A is better").click()
    expect(page.get_by_label("Status", exact=True)).to_have_value(re.compile("^Recorded"), timeout=TIMEOUT_MS)
    assert {v.annotator for v in hostile_service.store.votes()} == {NAME}  # stored as typed, shown as text

    page.get_by_role("tab", name="Data").click()  # the preview holds hostile prompts and responses
    expect(page.get_by_role("gridcell", name=RESPONSE, exact=True).first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_role("gridcell", name=RESPONSE_B, exact=True).first).to_be_visible()
    page.get_by_label("Export name (optional)").fill(TYPED)  # an error that quotes the input back
    page.get_by_role("button", name="Export", exact=True).click()
    expect(page.get_by_text("is not allowed", exact=False).first).to_be_visible(timeout=TIMEOUT_MS)
    clean(page, loopback)

    page.get_by_role("tab", name="Train").click()  # a round whose error message is hostile
    expect(page.get_by_role("gridcell", name=RESPONSE_B, exact=True)).to_be_visible(timeout=TIMEOUT_MS)
    clean(page, loopback)

    page.get_by_role("tab", name="Quality").click()  # the per-annotator table shows the hostile name
    expect(page.get_by_role("gridcell", name=NAME, exact=True).first).to_be_visible(timeout=TIMEOUT_MS)
    clean(page, loopback)

    for tab in ("Evaluate",):  # tabs added by other parts of the app, once they are wired in
        if page.get_by_role("tab", name=tab).count():
            page.get_by_role("tab", name=tab).click()
            clean(page, loopback)

    page.get_by_role("tab", name="Chat").click()  # the message, rendered as Markdown, and the streamed reply
    chat, message = page.locator("#base-chat"), page.get_by_label("Message to both models")
    message.fill(IMPORTED)
    page.get_by_role("button", name="Send", exact=True).click()
    expect(chat.locator("strong", has_text="mdbold")).to_have_count(1, timeout=TIMEOUT_MS)  # Markdown is rendered
    expect(chat.locator("li", has_text="item")).to_have_count(1)
    expect(chat.locator("pre code")).to_contain_text(f"<img src='{LOOPBACK}/code.png'>")  # code shows as code
    expect(chat).to_contain_text("[image: x]")  # an image is named, not drawn
    expect(chat.locator(".bot-row")).to_have_count(1, timeout=FIRST_PAIR_MS)  # after the model's queue work
    expect(message).to_have_value("", timeout=FIRST_PAIR_MS)  # the reply is complete
    clean(page, loopback)
    page.get_by_role("button", name="Clear both").click()  # the demo model's context holds one payload at a time
    expect(chat.locator(".bot-row")).to_have_count(0)
    message.fill(TYPED + RESPONSE_B)
    page.get_by_role("button", name="Send", exact=True).click()
    expect(chat.locator(".user-row")).to_contain_text(TYPED + RESPONSE_B, timeout=TIMEOUT_MS)
    expect(chat.locator(".bot-row")).to_have_count(1, timeout=FIRST_PAIR_MS)  # after the model's queue work
    clean(page, loopback)


def test_the_checks_see_a_payload_that_is_rendered(loopback: list[str]) -> None:
    """The same checks on a page that does render the payloads as HTML: they must all trip."""
    with chromium() as browser:
        page = browser.new_page()
        page.hostile_requests = []
        page.on("request", lambda r: (MARK in r.url or LOOPBACK in r.url) and page.hostile_requests.append(r.url))
        markdown_as_html = f'<img src="http://{MARK}/md.png"><u>under</u><a href="javascript:void(0)">j</a>'
        script = '<script>document.title="pwned"</script>'
        page.set_content(TYPED + markdown_as_html + RESPONSE + RESPONSE_B + script)
        page.wait_for_timeout(500)
        found = rendered(page)
        title = page.title()
    assert set(found) == {"img", "bold", "md image", "loopback image", "underline", "iframe", "link", "svg", "style",
                          "script"}
    assert page.hostile_requests and title == "pwned" and loopback  # the loopback server saw the fetches
