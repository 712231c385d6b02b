"""The promotion gate on a real round: a round trained with a learning rate far too high degenerates, the automatic
checks flag it, and *Make generator* refuses it until an admin confirms (recorded). Eval prompts never reach
labelling."""

from dataclasses import replace

import pytest

from prefapp.config import AppConfig, ConfigError, EvalConfig, TrainConfig
from prefapp.demo.loop import simulate_labelling
from prefapp.service import PrefService
from prefapp.training.rounds import model_card

BROKEN = TrainConfig(beta=0.01, learning_rate=1e-2, num_epochs=8, batch_size=8, max_length=256, save_steps=0)


def test_gate_refuses_a_degenerate_round_until_confirmed(tmp_path, demo_choice):
    config = replace(AppConfig(model="demo", data_dir=tmp_path), evaluation=EvalConfig(check_prompts=48))
    service = PrefService.open(config, choice=demo_choice, seed=0)
    try:
        simulate_labelling(service, 64)
        eval_texts = {p.text for p in service.store.eval_prompts()}
        assert len(eval_texts) == 300
        assert not eval_texts & {v.prompt[-1]["content"] for v in service.store.votes()}  # never labelled

        round_id = service.start_training(BROKEN)
        service.wait_training()
        checks = service.round_checks(round_id)
        assert checks is not None and checks.prompts == 48 and checks.flags, checks
        print(checks.summary())

        with pytest.raises(ConfigError, match="flagged it as degenerate") as refused:
            service.make_generator(round_id)
        assert "Confirm explicitly" in str(refused.value) and "halve the learning rate" in str(refused.value)
        assert service.generator is None and service.store.promotions() == []

        message = service.make_generator(round_id, confirm=True, admin="alice")
        assert service.generator == f"round-{round_id}" and "Refused" in message
        [promotion] = service.store.promotions()
        assert (promotion["round_id"], promotion["admin"], promotion["confirmed"]) == (round_id, "alice", True)
        assert promotion["flags"] == checks.flags
        assert "FLAGGED" in service.round_evaluations()[round_id]

        rnd = service.store.get_round(round_id)
        card = model_card(rnd.id, rnd.base_model, rnd.config, rnd.metrics, rnd.provenance,
                          evaluation=service.gate(round_id).text())
        assert "## Evaluation on held-out prompts" in card and "FLAGGED" in card
    finally:
        service.close()
