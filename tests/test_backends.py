"""Generator backends against a real engine: `transformers serve` with the bundled demo model, as its own process.

The loop runs through it (pairs, votes, export, a training round, chat, a chat sent to labelling), and an engine
killed mid-queue leaves the queued pairs labelable, every vote stored, and a message naming the server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from prefapp.config import DEMO_MODEL_DIR, AppConfig, ConfigError, LabelingConfig, SamplingConfig, TrainConfig
from prefapp.labeling.backends import (GeneratorError, LocalGenerator, OpenAIGenerator, PublishUnsupported,
                                       check_url, open_generator)
from prefapp.labeling.pair_queue import PairQueue
from prefapp.service import PrefService
from prefapp.store import Store
from tests.browser import free_port
from tests.engine import Engine, transformers_serve

SAMPLING = SamplingConfig(max_new_tokens=24)
CONVERSATION = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "2 + 2 = 4."},
                {"role": "user", "content": "And 3 + 4?"}]


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Iterator[Engine]:
    with transformers_serve(DEMO_MODEL_DIR, tmp_path_factory.mktemp("engine")) as running:
        yield running


def served_service(tmp_path, url: str, queue: int = 4) -> PrefService:
    config = AppConfig(model="demo", data_dir=tmp_path / "data", sampling=SAMPLING, generator_url=url,
                       labeling=LabelingConfig(queue_target=queue, queue_batch=min(queue, 4) or 1))
    return PrefService.open(config, seed=0)


# --- no server needed ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("url, fix", [("localhost:8000/v1", "e.g. http://127.0.0.1:8000/v1"), ("", "not an http"),
                                      ("http://user:sk-secret@host:8000/v1", "PREFAPP_GENERATOR_API_KEY")])
def test_bad_urls_are_refused_with_the_fix(url, fix):
    with pytest.raises(ConfigError, match=fix.replace(".", r"\.").replace("(", r"\(")):
        check_url(url)
    assert check_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1"


def test_unknown_generator_names_the_choices(demo_policy):
    with pytest.raises(ConfigError, match="use 'local'"):
        open_generator("vllm", None, None, demo_policy)
    assert isinstance(open_generator("local", None, None, demo_policy), LocalGenerator)


def test_a_dead_server_fails_fast_with_its_address():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    gen = OpenAIGenerator(url, model="m", retries=2, backoff_s=0.05)
    started = time.monotonic()
    with pytest.raises(GeneratorError, match="not answering .* after 2 tries: start it"):
        gen.sample([[{"role": "user", "content": "hi"}]], SAMPLING, num_samples=2)
    assert time.monotonic() - started < 5
    with pytest.raises(ConfigError, match="not answering"):
        OpenAIGenerator(url)  # no model named: it must ask the server, which is not there
    gen.close()


def test_local_generator_streams_pieces(demo_policy):
    texts = list(LocalGenerator(demo_policy).stream(CONVERSATION, SAMPLING))
    assert len(texts) >= 2 and texts[-1].startswith(texts[0]) and len(texts[-1]) > len(texts[0])


# --- a real engine -------------------------------------------------------------------------------------------


def test_engine_samples_streams_and_reports_its_model(engine: Engine, monkeypatch):
    monkeypatch.setenv("PREFAPP_GENERATOR_API_KEY", "sk-test-not-logged")
    gen = OpenAIGenerator(engine.url)  # the one model the engine serves
    assert gen.model == str(DEMO_MODEL_DIR)
    replies = gen.sample([CONVERSATION, [{"role": "user", "content": "Name a colour."}]], SAMPLING, num_samples=2)
    assert [len(r) for r in replies] == [2, 2] and all(all(text for text in r) for r in replies)
    assert gen._n_ok is False  # transformers serve ignores n: each sample was its own request
    texts = list(gen.stream(CONVERSATION, SAMPLING))
    assert len(texts) >= 2 and texts[-1].startswith(texts[0]) and len(texts[-1]) > len(texts[0])
    with pytest.raises(GeneratorError, match="HTTP 4\\d\\d: .*pinned"):  # a wrong model name, in the engine's words
        OpenAIGenerator(engine.url, model="no-such-model", retries=1).sample([CONVERSATION], SAMPLING)
    assert "sk-test-not-logged" not in engine.log.read_text()
    gen.close()


def engine_queue(engine: Engine, policy, store, overlap: bool | None = None) -> PairQueue:
    """A pair queue on the engine: 2 prompts x 2 samples in flight, 4 pairs kept ready, batches of 2."""
    return PairQueue(policy, store, SAMPLING, target=4, batch_size=2, seed=0, overlap=overlap,
                     generator=OpenAIGenerator(engine.url, in_flight=4))


def test_the_queue_keeps_engine_requests_in_flight_pair_by_pair(engine: Engine, demo_policy, tmp_path):
    """From an engine, each pair is queued alone and a taken pair is replaced at once; batches wait for room."""
    with Store(tmp_path / "q.duckdb") as store:
        store.add_prompts([f"What is {i} + {i}?" for i in range(12)], source="test")
        streaming, batched = engine_queue(engine, demo_policy, store), engine_queue(engine, demo_policy, store, False)
        assert (streaming.overlap, streaming.slots, batched.overlap) == (True, 2, False)
        try:
            streaming.start()
            assert streaming.wait_ready(4, timeout=180)
            status = streaming.status()
            assert (status.generated, status.last_batch_pairs, status.error) == (4, 1, None)  # one pair per job
            taken = streaming.take()
            assert streaming.wait_ready(4, timeout=120) and streaming.status().generated == 5  # one gap, one job
            ready = [streaming.take() for _ in range(4)]
            assert len({p.prompt.id for p in ready} | {taken.prompt.id}) == 5  # queued pairs count as served
            assert all(p.first and p.second and p.sampling == SAMPLING for p in ready)
            streaming.stop()

            batched.start()  # the old way, still selectable: a taken pair leaves a gap until a batch fits
            assert batched.wait_ready(4, timeout=180) and batched.status().last_batch_pairs == 2
            batched.take()
            time.sleep(1.0)
            status = batched.status()
            assert (status.ready, status.generated, status.generating) == (3, 4, False)
        finally:
            for queue in (streaming, batched):
                queue.stop()
                queue.generator.close()


def test_a_change_drops_the_engine_pairs_in_flight(engine: Engine, demo_policy, tmp_path):
    """Pairs still at the engine when the sampling changes are discarded, never served."""
    with Store(tmp_path / "q.duckdb") as store:
        store.add_prompts([f"Name {i} fruits." for i in range(1, 9)], source="test")
        queue = engine_queue(engine, demo_policy, store)
        try:
            queue.start()
            deadline = time.monotonic() + 60
            while not queue.status().generating and time.monotonic() < deadline:
                time.sleep(0.01)
            new = SamplingConfig(temperature=0.8, max_new_tokens=16)
            queue.configure(None, new)  # the first jobs are at the engine now
            assert queue.wait_ready(4, timeout=180)
            assert all(queue.take().sampling == new for _ in range(4))
            assert queue.status().discarded >= 1
        finally:
            queue.stop()
            queue.generator.close()


@pytest.mark.slow
def test_the_loop_runs_through_the_engine(engine: Engine, tmp_path, caplog):
    service = served_service(tmp_path, engine.url)
    try:
        info = service.model_info()
        assert (info.backend, info.backend_model) == (engine.url, str(DEMO_MODEL_DIR))
        assert engine.url in info.backend_text
        from prefapp.ui.common import model_text

        assert f"Generated by {DEMO_MODEL_DIR} served at {engine.url}" in model_text(info)  # the header line
        for n in range(8):
            pair = service.next_pair("ann")
            assert pair.response_a and pair.response_b
            assert service.store.pair_backend(pair.pair_id) == (engine.url, str(DEMO_MODEL_DIR))
            service.vote(pair.pair_id, "A" if n % 2 else "B", "ann")
        assert not service.policy.loaded  # the app never loaded the weights: the engine generates
        result = service.export("served")
        assert result.counts.pairs == 8

        round_id = service.start_training(TrainConfig(batch_size=4, num_epochs=1, max_length=128, save_steps=0))
        service.wait_training(300)
        [rnd] = service.rounds()
        assert (rnd.id, rnd.status) == (round_id, "finished")
        assert f"round-{round_id}" in service.backend.adapters and not service.policy.loaded
        with pytest.raises(PublishUnsupported, match=f"prefapp merge --round {round_id} .* --served-model-name"):
            service.make_generator(round_id)  # transformers serve has no runtime LoRA loading
        assert service.model_info().generator == "base"  # the refused publish changed nothing

        base, aligned = service.chat([], [], "What is 6 + 1?")
        assert base and aligned is None  # the round is not loaded in the engine, so there is nothing to compare
        streamed = [base for base, aligned in service.chat_stream([], [], "What is 6 + 1?")]
        assert len(streamed) >= 2 and streamed[-1].startswith(streamed[0])  # growing text, from the engine

        message = service.send_to_labeling(CONVERSATION)
        assert "3 turns" in message
        pair = service.next_pair("ann")
        assert pair.prompt.startswith("user: What is 2 + 2?") and pair.prompt.endswith("user: And 3 + 4?")
        service.vote(pair.pair_id, "A", "ann")
        exported = service.export("conversation")
        rows = [r for r in exported_rows(exported) if len(r["prompt"]) == 3]
        assert rows and rows[0]["prompt"] == CONVERSATION
    finally:
        service.close()
    assert "sk-" not in caplog.text


def exported_rows(result) -> list[dict]:
    from datasets import load_from_disk

    return list(load_from_disk(str(result.dataset_dir)))


@pytest.mark.slow
@pytest.mark.usefixtures("chromium_installed")
def test_an_engine_killed_mid_queue_loses_nothing(tmp_path):
    """Through the app: the queued pairs are labelled over the API after the kill, then /next_pair and the page
    say which server is down; every acknowledged vote is in DuckDB."""
    from gradio_client import Client
    from playwright.sync_api import expect

    from prefapp.ui.app import build_ui
    from tests.browser import chromium, served

    with transformers_serve(DEMO_MODEL_DIR, tmp_path) as engine:
        service = served_service(tmp_path, engine.url, queue=4)
        try:
            with served(build_ui(service)) as url:
                client = Client(url, verbose=False)
                first = client.predict("ann", api_name="/next_pair")  # starts the queue
                assert service.labeling.queue.wait_ready(2, timeout=120)
                engine.kill()
                pair_ids = [first[0]] + [client.predict("ann", api_name="/next_pair")[0]
                                         for _ in range(service.ready_pairs())]  # queued: no engine needed
                for pair_id in pair_ids:
                    assert "Recorded" in client.predict(pair_id, "A", "ann", api_name="/vote")
                with pytest.raises(Exception, match=f"{engine.url} is not answering .* no vote is lost"):
                    client.predict("ann", api_name="/next_pair")
                assert "not answering" in (service.labeling.queue.status().error or "")
                with chromium() as browser:
                    page = browser.new_page()
                    page.goto(url)
                    box = page.get_by_label("Your name (annotator)")
                    box.fill("bob")
                    box.press("Enter")
                    expect(page.get_by_text(f"{engine.url} is not answering", exact=False).first).to_be_visible()
            assert sorted(v.pair_id for v in service.store.votes()) == sorted(pair_ids)
        finally:
            service.close()


@pytest.mark.usefixtures("chromium_installed")
def test_a_chat_sent_to_labelling_becomes_the_next_pair(service: PrefService):
    """In Chromium: chat once, type the next message, send it to labelling; the next pair answers that turn."""
    from playwright.sync_api import expect

    from prefapp.ui.app import build_ui
    from tests.browser import chromium, served

    with served(build_ui(service)) as url, chromium() as browser:
        page = browser.new_page()
        page.goto(url)
        page.get_by_role("tab", name="Chat").click()
        box = page.get_by_label("Message to both models")
        box.fill("What is 2 + 2?")
        page.get_by_role("button", name="Send", exact=True).click()
        expect(box).to_have_value("")
        box.fill("And 3 + 4?")
        page.get_by_role("button", name="Label this chat").click()
        expect(page.get_by_text("Sent to labelling (3 turns)").first).to_be_visible()
    ready = service.labeling.queue.take()  # the next pair served (taken here without starting the queue's thread)
    assert [m["role"] for m in ready.prompt.messages] == ["user", "assistant", "user"]
    assert ready.prompt.messages[0]["content"] == "What is 2 + 2?" and ready.prompt.messages[-1]["content"] == "And 3 + 4?"
    assert ready.first and ready.second
