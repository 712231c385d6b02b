"""A conversation prompt in a real browser (Chromium via Playwright): its earlier turns are read-only chat bubbles above
the two replies, in the Label and the Evaluate tab, hidden for a single-turn prompt; hostile text in a turn is shown
as text (the checks of tests/test_hostile.py), Markdown in it is rendered."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from prefapp.config import AppConfig, EvalConfig, LabelingConfig
from prefapp.service import PrefService
from prefapp.store import Store
from prefapp.ui.app import build_ui
from tests.browser import FIRST_PAIR_MS, TIMEOUT_MS, chromium, served
from tests.test_browser_evaluate import untrained_round, warm_eval_queue
from tests.test_hostile import LOOPBACK, TYPED, clean, loopback  # noqa: F401 - loopback is a fixture

import playwright.sync_api as playwright_api  # noqa: E402
pytestmark = pytest.mark.usefixtures("chromium_installed")

ASSISTANT = f"**mdbold** ![x]({LOOPBACK}/md.png) <u>under</u>"  # Markdown rendered; the image named, not fetched
CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": TYPED},
                {"role": "assistant", "content": ASSISTANT}, {"role": "user", "content": "And *now*?"}]
EVAL_CONVERSATION = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "**Blue**."},
                     {"role": "user", "content": "Another one?"}]
SINGLE = "What is 2 + 2?"


@pytest.fixture
def turns_service(app_config: AppConfig, demo_choice) -> Iterator[PrefService]:
    """No labelling queue (pairs made on demand, so the order is known), one single-turn labelling prompt, a
    conversation sent to labelling, a conversation as the only eval prompt, and a round to compare with the base."""
    config = replace(app_config, labeling=LabelingConfig(queue_target=0, queue_batch=1),
                     evaluation=EvalConfig(queue_target=2, queue_batch=1, check_prompts=0))
    untrained_round(config, demo_choice.source)
    with Store(config.db_path) as store:  # a store with prompts: the demo's are not seeded
        store.add_prompts([SINGLE], source="test")
        store.add_eval_prompts([EVAL_CONVERSATION], "eval:test")
    service = PrefService.open(config, choice=demo_choice, seed=0)
    service.send_to_labeling(CONVERSATION)  # the next pair answers the conversation
    warm_eval_queue(service, 1)
    yield service
    service.close()


def test_earlier_turns_are_a_chat_view_in_label_and_evaluate(turns_service: PrefService,
                                                              loopback: list[str]) -> None:  # noqa: F811
    expect = playwright_api.expect
    with served(build_ui(turns_service)) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.hostile_requests, page.dialogs = [], []
        page.on("request", lambda r: LOOPBACK in r.url and page.hostile_requests.append(r.url))
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        page.goto(url)
        name = page.get_by_label("Your name (annotator)")
        name.fill("ann")
        name.press("Enter")
        turns, prompt = page.locator("#prompt-turns"), page.locator("#prompt")
        expect(turns).to_be_visible(timeout=FIRST_PAIR_MS)
        expect(turns.locator(".turn-user")).to_contain_text(TYPED)  # the payload, as its characters
        expect(turns.locator(".turn-assistant strong", has_text="mdbold")).to_have_count(1)  # Markdown rendered
        expect(turns.locator(".turn-assistant")).to_contain_text("[image: x]")
        expect(turns.locator(".turn-system")).to_contain_text("Be brief.")  # the system turn is shown too
        expect(turns.locator(".turn-user")).to_have_count(1)  # the last user turn is the prompt, below
        expect(prompt.locator("em", has_text="now")).to_have_count(1)
        expect(prompt).not_to_contain_text("mdbold")
        expect(page.locator("#response-a")).not_to_be_empty()
        clean(page, loopback)

        page.get_by_role("button", name="A is better").click()  # the next pair: the single-turn prompt
        expect(prompt).to_contain_text(SINGLE, timeout=FIRST_PAIR_MS)
        expect(turns).to_be_hidden()

        page.get_by_role("tab", name="Evaluate").click()
        judge = page.locator("#eval-annotator textarea, #eval-annotator input").first
        judge.fill("ann")
        judge.press("Enter")
        eval_turns = page.locator("#eval-turns")
        expect(eval_turns).to_be_visible(timeout=FIRST_PAIR_MS)
        expect(eval_turns.locator(".turn-user")).to_contain_text("Name a colour.")
        expect(eval_turns.locator(".turn-assistant strong", has_text="Blue")).to_have_count(1)
        expect(page.locator("#eval-prompt textarea")).to_have_value("Another one?")
        clean(page, loopback)
    assert [v.annotator for v in turns_service.store.votes()] == ["ann"]
