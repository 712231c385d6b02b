"""The Gradio app over the real service: its API surface, and the label loop driven through gradio_client."""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from prefapp.service import PrefService
from prefapp.training.progress import TrainProgress
from prefapp.ui.app import API_NAMES, build_ui
from prefapp.ui.train_tab import history_frame
from tests.browser import served

EXPECTED_ENDPOINTS = {"/next_pair", "/vote", "/undo", "/add_prompts", "/import_prompts", "/import_pairs", "/quality",
                      "/export", "/train", "/train_status", "/add_round", "/chat", "/set_generator",
                      "/eval_next", "/eval_vote", "/leaderboard", "/set_selection", "/rate_reply",
                      "/import_eval_prompts"}


@pytest.fixture
def client(service: PrefService) -> Iterator[Client]:
    """The real app on a free port, and a gradio_client connected to it."""
    with served(build_ui(service)) as url:
        yield Client(url, verbose=False)


def test_build_ui_exposes_exactly_the_named_api(service: PrefService) -> None:
    demo = build_ui(service)
    assert not demo.is_running
    api = demo.get_api_info(all_endpoints=True)  # undocumented endpoints included: there must be none
    assert set(api["named_endpoints"]) == EXPECTED_ENDPOINTS == {f"/{n}" for n in API_NAMES}
    assert api["unnamed_endpoints"] == {}
    vote = api["named_endpoints"]["/vote"]
    assert [p["parameter_name"] for p in vote["parameters"]] == ["pair_id", "choice", "annotator"]
    assert vote["parameters"][1]["type"] == {"enum": ["A", "B", "tie", "both_bad"]}
    assert len(api["named_endpoints"]["/next_pair"]["returns"]) == 4
    assert len(api["named_endpoints"]["/chat"]["returns"]) == 2
    groups = {f.api_name: (f.concurrency_id, f.concurrency_limit) for f in demo.fns.values() if f.api_name}
    for name in ("next_pair", "vote", "undo"):  # one annotator waiting on the model must not hold up the others
        assert groups[name] == ("label", 16), name
    train = {p["parameter_name"]: p["parameter_default"] for p in api["named_endpoints"]["/train"]["parameters"]}
    assert train == {"beta": 0.1, "learning_rate": 5e-4, "num_epochs": 1.0, "batch_size": 8, "max_length": 512,
                     "lora_r": 16, "loss_type": "sigmoid", "precompute_ref_log_probs": False, "save_steps": 50,
                     "sources": "votes", "imported_share": 0.0, "method": "dpo", "eval_votes": False}


def test_training_history_plots_as_numbers_and_starts_as_none() -> None:
    rows = ({"step": 1, "loss": 0.69, "rewards/margins": 0.0, "rewards/accuracies": 0.0, "grad_norm": 1.0},
            {"step": 2, "loss": 0.68, "rewards/margins": 0.02, "rewards/accuracies": 0.5})
    progress = TrainProgress(2, 4, 0.5, 3.0, 3.0, dict(rows[-1]), rows, "running", "step 2/4")
    frame = history_frame(progress)
    assert sorted(frame["metric"].unique()) == ["loss", "rewards/accuracies", "rewards/margins"]
    plot = gr.LinePlot(x="step", y="value", color="metric").postprocess(frame)
    assert plot.datatypes == {"step": "quantitative", "metric": "nominal", "value": "quantitative"}
    # Before the first logged step the plot gets None: an empty frame would leave gradio's LinePlot blank for good.
    assert history_frame(None) is None
    assert history_frame(TrainProgress(0, 4, 0.0, 1.0, None, {}, (), "starting", "")) is None


def test_label_loop_through_gradio_client(client: Client, service: PrefService) -> None:

    pair_id, prompt, response_a, response_b = client.predict("alice", api_name="/next_pair")
    pair = service.store.get_pair(pair_id)
    assert (pair.response_a, pair.response_b, pair.served_to) == (response_a, response_b, "alice")
    assert prompt

    message = client.predict(pair_id, "A", "alice", api_name="/vote")
    assert message.startswith("Recorded: A is better")
    votes = service.store.votes()
    assert [(v.pair_id, v.choice, v.annotator) for v in votes] == [(pair_id, "A", "alice")]

    again = client.predict(pair_id, "B", "alice", api_name="/vote")
    assert again.startswith("Already recorded")
    assert [(v.pair_id, v.choice) for v in service.store.votes()] == [(pair_id, "A")]

    with pytest.raises(AppError, match="choice='C' is not allowed: send one of 'A', 'B', 'tie', 'both_bad'"):
        client.predict(pair_id, "C", "bob", api_name="/vote")
    with pytest.raises(AppError, match="enter your name"):
        client.predict(pair_id, "A", "  ", api_name="/vote")
    with pytest.raises(AppError, match="batch_size=8 is larger than the 1 pairs"):
        client.predict(api_name="/train")
    assert len(service.store.votes()) == 1

    status = client.predict(api_name="/train_status")
    assert status["state"] == "idle" and status["running"] is False


def test_prompts_undo_and_quality_through_gradio_client(client: Client, service: PrefService) -> None:
    added = client.predict("Why is the sky blue?\nWhy is the sky blue?\n\nWrite a haiku about ducks.",
                           api_name="/add_prompts")
    assert added == "added 2 prompt(s), skipped 1 duplicate(s).", added
    (service.config.data_dir / "mine.txt").write_text("Explain DPO in one line.\nWrite a haiku about ducks.\n")
    imported = client.predict("mine.txt", "", "train", api_name="/import_prompts")
    assert imported.startswith("added 1 prompt(s), skipped 1 duplicate(s)"), imported
    with pytest.raises(AppError, match="outside the data directory"):
        client.predict("/etc/passwd", "", "train", api_name="/import_prompts")

    with pytest.raises(AppError, match="dana has no vote to undo"):
        client.predict("dana", api_name="/undo")
    pair_id, prompt, a, b = client.predict("dana", api_name="/next_pair")
    client.predict(pair_id, "tie", "dana", api_name="/vote")
    assert client.predict("dana", api_name="/undo") == (pair_id, prompt, a, b)  # back on screen, vote taken back
    assert service.store.votes() == []
    client.predict(pair_id, "A", "dana", api_name="/vote")

    quality = client.predict(api_name="/quality")
    assert quality["votes"] == 1 and [s["annotator"] for s in quality["annotators"]] == ["dana"]
    assert quality["annotators"][0]["share_a"] == 1.0 and quality["overlapped_pairs"] == 0


def test_export_chat_and_generator_through_gradio_client(client: Client, service: PrefService) -> None:
    pair_id, *_ = client.predict("carol", api_name="/next_pair")
    client.predict(pair_id, "B", "carol", api_name="/vote")

    message = client.predict("ui-test", "", api_name="/export")
    assert "Exported 1 pairs" in message
    assert (service.config.exports_dir / "ui-test" / "dataset_info.json").exists()
    with pytest.raises(AppError, match="not allowed"):
        client.predict("../escape", api_name="/export")
    # HF_HUB_OFFLINE=1 (conftest): the push fails with a message that names the remedy; the export stays on disk.
    pushed = client.predict("ui-test-2", "someone/prefs", api_name="/export")
    assert "Push failed" in pushed and "HF_TOKEN" in pushed
    assert (service.config.exports_dir / "ui-test-2.parquet").exists()

    base, aligned = client.predict("What is 2 plus 3?", api_name="/chat")
    assert isinstance(base, str) and aligned == ""  # no round trained yet
    with pytest.raises(AppError, match="not a finished round"):
        client.predict("round-7", api_name="/set_generator")
    assert "base model" in client.predict("base", api_name="/set_generator")


def test_train_round_then_chat_and_generate_with_it(client: Client, service: PrefService) -> None:
    for _ in range(4):
        pair_id, *_ = client.predict("erin", api_name="/next_pair")
        client.predict(pair_id, "A", "erin", api_name="/vote")

    started = client.predict(0.1, 5e-4, 1.0, 2, 256, 4, "sigmoid", api_name="/train")
    assert started.startswith("Round 1 started on 4 pairs")
    with pytest.raises(AppError, match="still training"):
        client.predict(api_name="/train")
    assert service.wait_training(timeout=120) is not None
    status = client.predict(api_name="/train_status")
    assert (status["state"], status["running"], status["round"], status["total_steps"]) == ("finished", False, 1, 2)
    assert {"loss", "rewards/margins", "rewards/accuracies"} <= set(status["metrics"])

    base, aligned = client.predict("What is 2 plus 3?", api_name="/chat")
    assert base and aligned  # the finished round became the aligned model
    assert "round-1" in client.predict("1", api_name="/set_generator")
    pair_id, *_ = client.predict("erin", api_name="/next_pair")
    assert service.store.get_pair(pair_id).adapter_id == "round-1"


def test_chat_thumbs_and_the_selection_setting_over_the_api(client: Client, service: PrefService) -> None:
    base, _ = client.predict("What is 2 + 2?", api_name="/chat")
    message = client.predict("What is 2 + 2?", base, True, "erin", "base", api_name="/rate_reply")
    assert message == "Thanks: thumbs up on the base reply is stored."
    (rated,) = service.store.stored_completions("chat")
    assert (rated.annotator, rated.completion, rated.label, rated.provenance["side"]) == ("erin", base, True, "base")
    assert "50% by coverage" in client.predict("active", 0.5, api_name="/set_selection")
    assert (service.labeling.selection.mode, service.labeling.selection.coverage_share) == ("active", 0.5)
