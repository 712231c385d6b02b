"""Two annotators in one real browser (Chromium via Playwright): keyboard shortcuts, undo, overlap, Quality tab."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import pytest

from prefapp.config import AppConfig, LabelingConfig
from prefapp.models import Policy
from prefapp.service import PrefService
from prefapp.store import Store
from prefapp.ui.app import build_ui
from tests.browser import TIMEOUT_MS, chromium, served

import playwright.sync_api as playwright_api  # noqa: E402
pytestmark = pytest.mark.usefixtures("chromium_installed")


@pytest.fixture
def overlap_service(app_config: AppConfig, demo_policy: Policy) -> Iterator[PrefService]:
    config = replace(app_config, labeling=LabelingConfig(queue_target=4, queue_batch=2, overlap=2))
    service = PrefService(config, Store(config.db_path), demo_policy, seed=0)
    service.add_typed_prompts("\n".join(f"What is {i} + 2?" for i in range(8)))
    yield service
    service.close()


@pytest.fixture
def browser(overlap_service: PrefService):
    with served(build_ui(overlap_service)) as url, chromium() as browser:
        browser.app_url = url
        yield browser


def sign_in(browser, name: str):
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()  # a session of its own
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(browser.app_url)
    box = page.get_by_label("Your name (annotator)")
    box.fill(name)
    box.press("Enter")
    playwright_api.expect(page.locator("#pair-id textarea")).not_to_have_value("")
    page.locator("#label-progress").click()  # leave the name box: shortcuts are off while typing
    return page


def test_shortcuts_undo_overlap_and_quality_with_two_annotators(browser, overlap_service: PrefService) -> None:
    expect = playwright_api.expect
    ann = sign_in(browser, "ann")
    pair_box = ann.locator("#pair-id textarea")
    first = pair_box.input_value()
    expect(ann.get_by_role("button", name="A is better [1]")).to_be_visible()  # the key is on the button
    expect(ann.get_by_role("button", name="Undo last vote [U]")).to_be_visible()

    ann.get_by_text("Optional: a reason").click()  # open the accordion
    ann.get_by_label("Reason (optional)").fill("1 2 u")  # typing in a box never triggers a shortcut
    assert overlap_service.store.votes() == []
    ann.locator("#label-progress").click()
    ann.keyboard.press("1")
    expect(pair_box).not_to_have_value(first)
    expect(pair_box).not_to_have_value("")
    [vote] = overlap_service.store.votes()
    assert (vote.pair_id, vote.choice, vote.annotator) == (first, "A", "ann")
    assert overlap_service.store.vote_notes() == {vote.id: ("1 2 u", None)}

    ann.keyboard.press("u")  # undo: the voted pair comes back, the vote is gone
    expect(pair_box).to_have_value(first)
    expect(ann.get_by_label("Status", exact=True)).to_have_value(re.compile("^Undone"))
    assert overlap_service.store.votes() == []
    ann.keyboard.press("2")
    expect(pair_box).not_to_have_value(first)
    expect(ann.get_by_label("Your votes")).to_have_value("1")

    bob = sign_in(browser, "bob")  # overlap 2: bob is shown the pair ann voted on
    expect(bob.locator("#pair-id textarea")).to_have_value(first)
    bob.keyboard.press("2")
    expect(bob.locator("#pair-id textarea")).not_to_have_value(first)
    expect(bob.get_by_label("Everyone's votes")).to_have_value("2")

    ann.get_by_role("tab", name="Quality").click()
    expect(ann.get_by_text(re.compile(r"100% agreement, Fleiss' kappa .* on 1 pairs"))).to_be_visible()
    expect(ann.get_by_role("gridcell", name="bob", exact=True).first).to_be_visible()
