"""The Evaluate tab in a real browser (Chromium via Playwright): keys, blind sides, identities revealed after the
vote, the verdict and the leaderboard."""

from __future__ import annotations

import re
import time
from dataclasses import replace

import pytest

from prefapp.config import AppConfig, EvalConfig
from prefapp.service import PrefService
from prefapp.store import Store
from prefapp.ui.app import build_ui
from tests.browser import TIMEOUT_MS, chromium, served

import playwright.sync_api as playwright_api  # noqa: E402
pytestmark = pytest.mark.usefixtures("chromium_installed")


def untrained_round(config: AppConfig, source: str) -> None:
    """A finished round whose adapter is a real PEFT LoRA with random weights: it answers differently from the base
    (what the tab needs), without the cost of training one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(source),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter_dir = config.adapters_dir / "round-1"
    model.save_pretrained(str(adapter_dir))
    with Store(config.db_path) as store:
        round_id = store.start_round(base_model=source, config={}, export_path=None, n_pairs=0)
        store.finish_round(round_id, str(adapter_dir), {"loss": 0.69})


@pytest.fixture
def eval_service(app_config: AppConfig, demo_choice):
    config = replace(app_config, evaluation=EvalConfig(queue_target=4, queue_batch=2, check_prompts=0))
    untrained_round(config, demo_choice.source)
    service = PrefService.open(config, choice=demo_choice, seed=0)  # the demo's held-out set becomes the eval set
    warm_eval_queue(service, 2)
    yield service
    service.close()


def warm_eval_queue(service: PrefService, ready: int) -> None:
    """Start the eval queue on the default comparison and wait (up to 300 s) for `ready` pairs, as a served app
    would have them."""
    service.evaluation.queue.configure(service.eval_comparison(), service.sampling)
    service.evaluation.queue.start()
    deadline = time.monotonic() + 300
    while service.evaluation.queue.ready() < ready and time.monotonic() < deadline:
        time.sleep(0.2)


def test_evaluate_tab_keys_blind_sides_and_verdict(eval_service: PrefService) -> None:
    expect = playwright_api.expect
    assert eval_service.store.eval_prompt_count() == 300
    with served(build_ui(eval_service)) as url, chromium() as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.get_by_role("tab", name="Evaluate").click()
        expect(page.locator("#eval-verdict")).to_contain_text("round-1 vs base")
        name = page.locator("#eval-annotator textarea, #eval-annotator input").first
        name.fill("carol")
        name.press("Enter")
        pair_box = page.locator("#eval-pair-id textarea")
        expect(pair_box).not_to_have_value("")
        first = pair_box.input_value()
        revealed = page.locator("#eval-revealed textarea")
        expect(revealed).to_have_value("")  # blind: nothing says which policy wrote A or B before the vote
        for side in ("#eval-response-a textarea", "#eval-response-b textarea"):
            assert "round-1" not in page.locator(side).input_value()
        expect(page.get_by_role("button", name="A is better [1]")).to_be_visible()

        page.locator("#eval-verdict").click()  # leave the name box: keys are off while typing
        page.keyboard.press("1")
        expect(pair_box).not_to_have_value(first)
        [vote] = eval_service.store.eval_votes()
        assert (vote.pair_id, vote.choice, vote.annotator, vote.judge) == (first, "A", "carol", "human")
        assert {vote.policy_a, vote.policy_b} == {"base", "round-1"}
        assert (vote.backend, vote.sampling["backend_model"]) == ("local", eval_service.policy.choice.label)
        expect(revealed).to_have_value(re.compile(f"A was {vote.policy_a}, B was {vote.policy_b}; "
                                                  f"you picked {vote.policy_a}"))  # revealed only now
        expect(page.locator("#eval-verdict")).to_contain_text("Verdict: not decided yet: about")

        second = pair_box.input_value()
        page.keyboard.press("3")
        expect(pair_box).not_to_have_value(second)
        assert [v.choice for v in eval_service.store.eval_votes()] == ["A", "tie"]
        assert eval_service.store.votes() == []  # eval votes never become labelling votes

        page.get_by_role("button", name="Refresh").last.click()
        expect(page.locator("#eval-leaderboard")).to_contain_text("round-1")
        expect(page.locator("#eval-plot svg")).to_be_visible()
