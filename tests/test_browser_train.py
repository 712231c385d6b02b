"""The Train tab in a real browser, as a new user would try it: a bad setting is caught by the preflight and the
start refuses it; a run is watched, cancelled and resumed; the round is listed with its provenance and hot-swapped
in as the generator."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefapp.service import PrefService
from prefapp.ui.app import build_ui

sys.path.insert(0, str(Path(__file__).parent))
from tests.browser import TIMEOUT_MS, chromium, served  # noqa: E402
from test_rounds import seed_votes  # noqa: E402

import playwright.sync_api as playwright_api  # noqa: E402
pytestmark = pytest.mark.usefixtures("chromium_installed")
SCREENSHOT = Path("/tmp/prefapp-browser-train.png")


@pytest.fixture
def page(service: PrefService) -> Iterator:
    seed_votes(service.store, 16, context="Please answer: ")
    with served(build_ui(service)) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        yield page


def set_number(page, label: str, value: float) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")


def test_preflight_watch_cancel_resume_and_swap(page, service: PrefService) -> None:
    expect = playwright_api.expect
    page.get_by_role("tab", name="Train").click()
    set_number(page, "max_length (tokens)", 16)
    set_number(page, "batch_size", 4)
    page.get_by_role("button", name="Check settings (preflight)").click()
    expect(page.get_by_text("fix the errors below first")).to_be_visible()
    expect(page.get_by_text(re.compile("every prompt fills max_length=16"))).to_be_visible()
    preview = page.get_by_label("One example exactly as the model reads it (chat template applied)")
    expect(preview).to_have_value(re.compile(r"^<\|user\|>\nPlease answer: "))
    page.get_by_role("button", name="Start training").click()  # the start refuses it too, with the same fix
    expect(page.get_by_text(re.compile("every prompt fills max_length=16")).last).to_be_visible()
    assert service.rounds() == []

    set_number(page, "max_length (tokens)", 128)
    set_number(page, "num_epochs", 10)  # 40 steps: long enough to watch and cancel
    set_number(page, "checkpoint every N steps (0: only on cancel)", 0)
    page.get_by_role("button", name="Check settings (preflight)").click()
    expect(page.get_by_text("ready to train")).to_be_visible()
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text(re.compile(r"step [3-9]/40|step [1-3]\d/40"))).to_be_visible(timeout=90_000)
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.get_by_role("gridcell", name="cancelled", exact=True)).to_be_visible(timeout=60_000)

    set_number(page, "Round (number in the table)", 1)
    page.get_by_role("button", name="Resume (from its checkpoint)").click()
    expect(page.get_by_label("Round operation")).to_have_value(re.compile("resumes from its last checkpoint"))
    expect(page.get_by_role("gridcell", name="finished", exact=True)).to_be_visible(timeout=120_000)
    expect(page.get_by_role("gridcell", name="1", exact=True).first).to_be_visible()  # resumes column
    sha = service.rounds()[0].provenance["dataset_sha256"][:12]
    expect(page.get_by_role("gridcell", name=sha, exact=True)).to_be_visible()

    page.get_by_role("button", name="Make generator (hot swap)").click()
    expect(page.get_by_label("Round operation")).to_have_value(re.compile("New pairs now come from round-1"))
    assert service.generator == "round-1" and service.next_pair("ann").generator == "round-1"
    page.get_by_role("button", name="Roll back generator").click()
    expect(page.get_by_label("Round operation")).to_have_value(re.compile("the base model"))
    page.screenshot(path=str(SCREENSHOT), full_page=True)
