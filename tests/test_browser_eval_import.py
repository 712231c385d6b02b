"""The Data tab's eval-set import in real Chromium: a CSV is uploaded, its prompt column chosen as for a prompt import,
and *Import as eval prompts* adds them to the held-out set: counted on the tab, never served for labelling."""

from __future__ import annotations

import re

import pytest

from prefapp.service import PrefService
from prefapp.ui.app import build_ui
from tests.browser import TIMEOUT_MS, chromium, served

import playwright.sync_api as playwright_api  # noqa: E402
pytestmark = pytest.mark.usefixtures("chromium_installed")


def test_import_an_eval_set_through_the_data_tab(service: PrefService, tmp_path) -> None:
    expect = playwright_api.expect
    labelling = service.store.least_served_prompts(1)[0].text  # already a labelling prompt: cannot be held out
    upload = tmp_path / "eval.csv"
    upload.write_text(f'id,question\n1,Held-out question one?\n2,Held-out question two?\n3,"{labelling}"\n')
    eval_before, prompts_before = service.store.eval_prompt_count(), service.store.prompt_count()
    with served(build_ui(service)) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.get_by_role("tab", name="Data").click()
        counts = page.get_by_text(re.compile(r"eval prompts, held out"))
        expect(counts).to_contain_text(f"{eval_before} eval prompts")
        box = page.locator("div.block", has=page.get_by_text("Prompt file", exact=True)).last
        box.locator("input[type=file]").set_input_files(str(upload))
        column = page.get_by_label("Prompt column (blank: prompt/messages/question/...)")
        column.click()
        page.get_by_role("option", name="question").click()
        expect(column).to_have_value("question")
        page.get_by_role("button", name="Import as eval prompts (held out: never labelled)").click()
        result = page.get_by_label("Import result")
        expect(result).to_have_value(re.compile("Added 2 eval prompt.*skipped 1 already used for labelling"))
        expect(counts).to_contain_text(f"{eval_before + 2} eval prompts")
    held = {p.text for p in service.store.eval_prompts()}
    assert {"Held-out question one?", "Held-out question two?"} <= held and labelling not in held
    assert service.store.prompt_count() == prompts_before  # none became a labelling prompt
    served_texts = {p.text for p in service.store.least_served_prompts(prompts_before + 10)}
    assert not served_texts & {"Held-out question one?", "Held-out question two?"}
