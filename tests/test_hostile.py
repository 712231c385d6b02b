"""Hostile text in a real browser: prompts, responses, names, file imports and errors carrying HTML, JS or Markdown
tricks are shown as their characters; no script runs and nothing is fetched from a payload's address."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from prefapp.config import AppConfig
from prefapp.models import Policy
from prefapp.service import PrefService
from prefapp.store import Store
from prefapp.ui.app import build_ui
from tests.browser import TIMEOUT_MS, chromium, served

MARK = "pwned.invalid"  # any request to this host means a payload was rendered
TYPED = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script><b>bold</b>'
IMPORTED = f"![x](http://{MARK}/md.png) [click](javascript:document.title='pwned') **mdbold** <u>under</u>"
RESPONSE = f'<iframe src="http://{MARK}/frame"></iframe><a href="http://{MARK}/a">link</a>'
RESPONSE_B = f'<svg onload="document.title=\'pwned\'"></svg><style>body{{background:url(http://{MARK}/bg)}}</style>'
NAME = "<img src=x onerror=alert(9)>"
PAYLOADS = (TYPED, IMPORTED)

import playwright.sync_api as playwright_api  # noqa: E402
pytestmark = pytest.mark.usefixtures("chromium_installed")


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
def page(hostile_service: PrefService):
    with served(build_ui(hostile_service)) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.hostile_requests, page.dialogs = [], []
        page.on("request", lambda r: MARK in r.url and page.hostile_requests.append(r.url))
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        page.goto(url)
        yield page


def rendered(page) -> dict[str, int]:
    """Elements a payload would create if any of it were rendered as HTML or Markdown."""
    selectors = {"img": "img[src='x']", "bold": "b:has-text('bold')", "md image": f"img[src*='{MARK}']",
                 "md bold": "strong:has-text('mdbold')", "underline": "u:has-text('under')",
                 "iframe": f"iframe[src*='{MARK}']", "link": f"a[href*='{MARK}'], a[href^='javascript']",
                 "svg": "svg[onload]"}
    return {name: page.locator(sel).count() for name, sel in selectors.items() if page.locator(sel).count()}


def test_hostile_text_is_shown_as_text_everywhere(page, hostile_service: PrefService) -> None:
    expect = playwright_api.expect
    name = page.get_by_label("Your name (annotator)")
    name.fill(NAME)
    name.press("Enter")
    prompt = page.get_by_label("Prompt", exact=True)
    expect(prompt).to_have_value(re.compile("^(" + "|".join(map(re.escape, PAYLOADS)) + ")$"), timeout=TIMEOUT_MS)
    page.get_by_role("button", name="A is better").click()
    expect(page.get_by_label("Status", exact=True)).to_have_value(re.compile("^Recorded"), timeout=TIMEOUT_MS)
    assert {v.annotator for v in hostile_service.store.votes()} == {NAME}  # stored as typed, shown as text

    page.get_by_role("tab", name="Data").click()  # the preview holds hostile prompts and responses
    expect(page.get_by_role("gridcell", name=RESPONSE, exact=True).first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_role("gridcell", name=RESPONSE_B, exact=True).first).to_be_visible()
    page.get_by_label("Export name (optional)").fill(TYPED)  # an error that quotes the input back
    page.get_by_role("button", name="Export", exact=True).click()
    expect(page.get_by_text("is not allowed", exact=False).first).to_be_visible(timeout=TIMEOUT_MS)

    page.get_by_role("tab", name="Train").click()  # a round whose error message is hostile
    expect(page.get_by_role("gridcell", name=RESPONSE_B, exact=True)).to_be_visible(timeout=TIMEOUT_MS)

    page.get_by_role("tab", name="Quality").click()  # the per-annotator table shows the hostile name
    expect(page.get_by_role("gridcell", name=NAME, exact=True).first).to_be_visible(timeout=TIMEOUT_MS)

    page.get_by_role("tab", name="Chat").click()
    page.get_by_label("Message to both models").fill(IMPORTED)
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_label("Base model")).to_have_value(re.compile("^" + re.escape(f"You: {IMPORTED}")),
                                                         timeout=TIMEOUT_MS)
    page.wait_for_timeout(500)  # let any stray fetch start before checking
    assert rendered(page) == {}
    assert page.hostile_requests == [] and page.dialogs == []
    assert page.title() != "pwned"


def test_the_checks_see_a_payload_that_is_rendered() -> None:
    """The same checks on a page that does render the payloads as HTML: they must all trip."""
    with chromium() as browser:
        page = browser.new_page()
        page.hostile_requests = []
        page.on("request", lambda r: MARK in r.url and page.hostile_requests.append(r.url))
        markdown_as_html = f'<img src="http://{MARK}/md.png"><strong>mdbold</strong><u>under</u>'
        page.set_content(TYPED + markdown_as_html + RESPONSE + RESPONSE_B)
        page.wait_for_timeout(500)
        found = rendered(page)
        title = page.title()
    assert set(found) == {"img", "bold", "md image", "md bold", "underline", "iframe", "link", "svg"}
    assert page.hostile_requests and title == "pwned"
