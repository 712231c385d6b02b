"""The promotion gate on every route to the generator: a round judged worse is refused through /set_generator and
through the Chat tab's switch (in Chromium), each saying how to confirm, and accepted with the confirmation, which
is recorded as an override; PREFAPP_REQUIRE_WORKING holds on those routes too."""

from __future__ import annotations

from dataclasses import replace

import pytest
from gradio_client import Client

from prefapp.config import AppConfig, EvalConfig
from prefapp.evaluation.gate import GateRefused
from prefapp.service import PrefService
from prefapp.ui.app import build_ui
from tests.browser import TIMEOUT_MS, chromium, served
from tests.test_browser_evaluate import untrained_round

import playwright.sync_api as playwright_api  # noqa: E402

SAMPLING = {"temperature": 1.0, "top_p": 0.95, "max_new_tokens": 8}


def judged_worse(service: PrefService, policy: str = "round-1", votes: int = 40, lost: int = 32) -> None:
    """Blind eval votes in the store where `policy` loses `lost` of `votes` against the base."""
    prompt = service.store.eval_prompts(limit=1)[0]
    for i in range(votes):
        shown = ("base", policy) if i % 2 else (policy, "base")
        pair = service.store.add_eval_pair(prompt, *shown, "x", "y", shown[0] != "base", "demo", SAMPLING, f"j{i}")
        base_side = "A" if shown[0] == "base" else "B"
        service.store.record_eval_vote(pair.id, base_side if i < lost else {"A": "B", "B": "A"}[base_side], f"j{i}")


@pytest.fixture
def gated(app_config: AppConfig, demo_choice):
    config = replace(app_config, evaluation=EvalConfig(queue_target=0, queue_batch=1, check_prompts=0))
    untrained_round(config, demo_choice.source)
    service = PrefService.open(config, choice=demo_choice, seed=0)
    judged_worse(service)
    yield service
    service.close()


@pytest.mark.usefixtures("chromium_installed")
def test_a_worse_round_is_refused_on_every_route_until_confirmed(gated: PrefService) -> None:
    expect = playwright_api.expect
    assert gated.gate(1).verdict == "worse" and gated.aligned == "round-1"
    with served(build_ui(gated)) as url:
        client = Client(url, verbose=False)
        with pytest.raises(Exception, match="(?s)judged worse than base.*confirm=true"):
            client.predict("1", api_name="/set_generator")
        assert gated.generator is None and gated.store.promotions() == []
        accepted = client.predict("round-1", True, api_name="/set_generator")
        assert "New pairs now come from round-1" in accepted and "Refused" in accepted
        assert gated.generator == "round-1"
        assert [(p["round_id"], p["verdict"], p["confirmed"]) for p in gated.store.promotions()] == [(1, "worse", True)]
        assert "base model" in client.predict("base", api_name="/set_generator")  # back to the base: no gate

        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            page.get_by_role("tab", name="Chat").click()
            switch = page.get_by_role("button", name="Use the aligned model as the generator for new pairs")
            switch.click()
            expect(page.get_by_text("tick Confirm beside the button").first).to_be_visible()
            expect(page.get_by_text("judged worse than base").first).to_be_visible()
            assert gated.generator is None and len(gated.store.promotions()) == 1
            confirm = page.get_by_label("Confirm: even if judged worse or flagged (recorded)")
            confirm.check()
            switch.click()
            expect(page.get_by_text("New pairs now come from round-1").first).to_be_visible()
            expect(confirm).not_to_be_checked()  # a confirmation is for one promotion
    assert gated.generator == "round-1"
    assert [p["confirmed"] for p in gated.store.promotions()] == [True, True]


def test_require_working_refuses_an_undecided_round_on_set_generator(app_config: AppConfig, demo_choice) -> None:
    config = replace(app_config, evaluation=EvalConfig(require_working=True, queue_target=0, queue_batch=1,
                                                       check_prompts=0))
    untrained_round(config, demo_choice.source)
    service = PrefService.open(config, choice=demo_choice, seed=0)
    try:
        with pytest.raises(GateRefused, match="PREFAPP_REQUIRE_WORKING"):
            service.set_generator("round-1")
        assert service.generator is None and service.store.promotions() == []
        with pytest.raises(ValueError, match="round-7 is not a finished round: pick one of base, round-1"):
            service.set_generator("7")
        assert "round-1" in service.set_generator("round-1", confirm=True, admin="alice")
        assert [(p["admin"], p["verdict"], p["confirmed"]) for p in service.store.promotions()] == [
            ("alice", "undecided", True)]
    finally:
        service.close()
