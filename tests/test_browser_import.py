"""The Data tab's pair import in real Chromium: a file is uploaded, its detected format and parsed rows appear before
anything is written, Import stores them and the counts by source follow; a hostile cell stays text."""

from __future__ import annotations

import json
import re

import pytest

from prefapp.service import PrefService
from prefapp.ui.app import build_ui
from tests.browser import TIMEOUT_MS, chromium, served

import playwright.sync_api as playwright_api  # noqa: E402
pytestmark = pytest.mark.usefixtures("chromium_installed")

PAYLOAD = "<img src=x onerror=alert(1)>"  # a chosen response that must show as these characters


def test_upload_preview_then_import_pairs(service: PrefService, tmp_path) -> None:
    expect = playwright_api.expect
    rows = [{"prompt": "What is 2 + 2?", "chosen": "4", "rejected": "5"},
            {"prompt": "Name a colour.", "chosen": PAYLOAD, "rejected": "Purple."}]
    upload = tmp_path / "pairs.jsonl"
    upload.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with served(build_ui(service)) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.get_by_role("tab", name="Data").click()
        box = page.locator("div.block", has=page.get_by_text("Preference file", exact=True)).last
        box.locator("input[type=file]").set_input_files(str(upload))
        status = page.get_by_label("Detected format and result")
        expect(status).to_have_value(re.compile("detected format trl-standard .* 2 rows -> 2 pairs"))
        assert service.imported_counts() == {}  # shown, not written
        expect(page.get_by_role("gridcell", name=PAYLOAD)).to_be_visible()
        assert page.locator("img[src='x']").count() == 0
        page.get_by_role("button", name="Import pairs").click()
        expect(status).to_have_value(re.compile("read as trl-standard: added 2 pairs"))
        expect(page.get_by_role("gridcell", name="pairs.jsonl")).to_be_visible()
    assert service.imported_counts() == {"pairs.jsonl": 2}
