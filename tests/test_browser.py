"""One real-browser pass over the app: Debian Chromium driven by Playwright, the demo model, a DuckDB file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefapp.config import AppConfig
from prefapp.models import Policy
from prefapp.service import PrefService
from prefapp.store import Store
from prefapp.ui.app import build_ui
from tests.browser import FIRST_PAIR_MS, TIMEOUT_MS, chromium, served

PAYLOAD = "<img src=x onerror=alert(1)><b>bold</b>"  # must show as these characters, never as an image or bold
SCREENSHOT = Path("/tmp/prefapp-browser-label.png")

import playwright.sync_api as playwright_api  # noqa: E402
pytestmark = pytest.mark.usefixtures("chromium_installed")


@pytest.fixture
def payload_service(app_config: AppConfig, demo_policy: Policy) -> Iterator[PrefService]:
    """A service whose only prompt is the HTML payload (built directly, so no demo prompts are seeded)."""
    service = PrefService(app_config, Store(app_config.db_path), demo_policy, seed=0)
    service.add_typed_prompts(PAYLOAD)
    yield service
    service.close()


@pytest.fixture
def app_url(payload_service: PrefService) -> Iterator[str]:
    with served(build_ui(payload_service)) as url:
        yield url


@pytest.fixture
def page(app_url: str):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app_url)
        yield page


def injected(page) -> int:
    """Elements the payload would create if it were rendered as HTML anywhere on the page."""
    return page.locator("img[src='x']").count() + page.locator("b", has_text="bold").count()


def test_label_vote_and_untrusted_text_in_the_browser(page, payload_service: PrefService) -> None:
    expect = playwright_api.expect
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    name = page.get_by_label("Your name (annotator)")
    name.fill("dora")
    name.press("Enter")
    pair_box = page.locator("#pair-id textarea")
    expect(pair_box).not_to_have_value("", timeout=TIMEOUT_MS)
    pair_id = pair_box.input_value()
    expect(page.locator("#prompt p")).to_have_text(PAYLOAD)  # the literal characters, in a Markdown paragraph
    expect(page.get_by_label("Your votes")).to_have_value("0")

    page.get_by_role("button", name="A is better").click()
    expect(page.get_by_label("Your votes")).to_have_value("1", timeout=TIMEOUT_MS)
    expect(page.get_by_label("Status", exact=True)).to_have_value(re.compile("^Recorded: A is better"))
    votes = payload_service.store.votes()
    assert [(v.pair_id, v.choice, v.annotator) for v in votes] == [(pair_id, "A", "dora")]
    expect(pair_box).not_to_have_value(pair_id, timeout=TIMEOUT_MS)  # the next pair loaded
    expect(pair_box).not_to_have_value("", timeout=TIMEOUT_MS)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    page.get_by_role("tab", name="Data").click()  # the preview table shows the voted payload prompt
    expect(page.get_by_role("gridcell", name=PAYLOAD, exact=True)).to_be_visible(timeout=TIMEOUT_MS)

    page.get_by_role("tab", name="Chat").click()  # the message and the streamed reply appear in the chat view
    page.get_by_label("Message to both models").fill(PAYLOAD)
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#base-chat .user-row").first).to_contain_text(PAYLOAD, timeout=TIMEOUT_MS)
    expect(page.locator("#base-chat .bot-row")).to_have_count(1, timeout=FIRST_PAIR_MS)
    expect(page.get_by_label("Message to both models")).to_have_value("", timeout=FIRST_PAIR_MS)  # reply complete
    page.get_by_role("button", name="👎 bad reply (base)").click()  # thumbs on the reply: stored for KTO
    expect(page.get_by_text("thumbs down on the base reply is stored")).to_be_visible(timeout=TIMEOUT_MS)
    (rated,) = payload_service.store.stored_completions("chat")
    assert (rated.annotator, rated.label, rated.prompt) == ("dora", False, [{"role": "user", "content": PAYLOAD}])
    expect(page.locator("#base-chat .bot-row")).to_contain_text(rated.completion.split()[0])  # the reply shown

    assert injected(page) == 0
    assert dialogs == []
