"""Preflight with the demo model's real tokenizer and chat template: counts, truncation, preview, memory, settings."""

from __future__ import annotations

import pytest
from datasets import Dataset
from transformers import AutoConfig, AutoTokenizer

from prefapp.config import DEMO_MODEL_DIR, TrainConfig
from prefapp.training.preflight import audit_lengths, check_hyperparameters, estimate_memory, run_preflight, scaled_defaults

USER = [{"role": "user", "content": "What is the capital of France?"}]


def row(chosen: str, rejected: str, prompt: list[dict] = USER) -> dict:
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)


@pytest.fixture(scope="module")
def model_config():
    return AutoConfig.from_pretrained(DEMO_MODEL_DIR)


def test_data_checks_count_each_kind_of_useless_pair(tok, model_config):
    rows = [row("Paris.", "Go away."), row("Paris.", "Go away."), row("Same.", "Same."), row("", "Lyon."),
            row("The answer is Paris.", "Rome.")] + [row(f"Paris {i}.", f"No {i}.") for i in range(5)]
    report = run_preflight(Dataset.from_list(rows), TrainConfig(batch_size=2), tok, model_config,
                           ties_dropped=3, both_bad_dropped=1)
    d = report.data
    assert (d.pairs, d.duplicates, d.identical, d.empty, d.ties_dropped, d.both_bad_dropped) == (10, 1, 1, 1, 3, 1)
    text = report.markdown()
    assert "chosen identical to rejected" in text and "empty response" in text and "repeat an earlier pair" in text
    assert report.ok  # advice only: nothing here makes training impossible


def test_truncation_audit_counts_cuts_and_lost_differences_and_suggests_a_length(tok):
    same_start = "The capital of France is Paris, a city on the Seine with many museums and old bridges"
    rows = ([row(same_start + " and cafes.", same_start + " so go away.")] * 3  # differ only at the very end
            + [row("Paris.", "Go away.")] * 17)
    prompt_ids = tok.apply_chat_template(USER, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    prompt_len = len(prompt_ids)
    audit = audit_lengths(rows, tok, max_length=prompt_len + 8)
    assert (audit.audited, audit.truncated, audit.lost_difference, audit.dropped) == (20, 3, 3, 0)
    assert audit.longest > prompt_len + 8
    # 17 of 20 short pairs is 85% < 95%: the suggestion must keep the long ones too, and then nothing is cut.
    assert audit.suggested_max_length >= audit.longest and audit.suggested_max_length % 16 == 0
    assert audit_lengths(rows, tok, audit.suggested_max_length).truncated == 0
    assert audit_lengths(rows, tok, max_length=prompt_len).dropped == 20


def test_preview_is_the_exact_chat_template_text(tok, model_config):
    report = run_preflight(Dataset.from_list([row("Paris.", "Go away.")] * 4), TrainConfig(batch_size=2), tok,
                           model_config)
    expected = tok.apply_chat_template(USER + [{"role": "assistant", "content": "Paris."}], tokenize=False)
    assert report.preview == expected and "<|user|>" in report.preview and "Paris." in report.preview


@pytest.mark.parametrize("config, n_pairs, level, fix", [
    (TrainConfig(batch_size=64), 10, "error", "use at most 10"),
    (TrainConfig(learning_rate=5e-3 * 1.5), 100, "warning", "sane range"),
    (TrainConfig(learning_rate=1e-7), 100, "warning", "try 0.0005"),
    (TrainConfig(batch_size=8, num_epochs=1), 16, "warning", "optimizer step"),
    (TrainConfig(num_epochs=10), 100, "warning", "overfit"),
    (TrainConfig(max_length=4096), 100, "warning", "context of 256"),
], ids=["batch>data", "lr-high", "lr-low", "few-steps", "epochs", "context"])
def test_hyperparameters_get_messages_that_name_the_fix(config, n_pairs, level, fix):
    issues = check_hyperparameters(config, n_pairs, params=4_000_000, context_length=256)
    assert any(i.level == level and fix in i.message for i in issues), issues


def test_defaults_scale_with_model_size_and_mode():
    tiny, large = scaled_defaults(4_000_000), scaled_defaults(7_000_000_000)
    assert tiny.learning_rate > large.learning_rate and tiny.batch_size > large.batch_size
    assert scaled_defaults(4_000_000, lora=False).learning_rate < tiny.learning_rate  # full fine-tuning: far lower
    assert check_hyperparameters(tiny, 1000, 4_000_000, 2048) == []
    assert any("sane range" in i.message for i in check_hyperparameters(tiny, 1000, 7_000_000_000, 4096))


def test_memory_estimate_grows_with_batch_and_length_and_warns_before_an_oom(tok, model_config):
    small = estimate_memory(model_config, TrainConfig(batch_size=1, max_length=64), device="cpu")
    big = estimate_memory(model_config, TrainConfig(batch_size=64, max_length=256), device="cpu")
    assert 3.5e6 < small.params < 4.0e6 and small.trainable > 0 and small.available_gb > 0
    assert big.total_gb > 10 * small.total_gb
    # A 7B-parameter shape on this CPU cannot fit: the report must say so and name what to lower.
    huge = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
            "vocab_size": 32000, "max_position_embeddings": 4096}
    report = run_preflight(Dataset.from_list([row("Paris.", "Go away.")] * 8), TrainConfig(batch_size=8), tok, huge)
    assert 6e9 < report.memory.params < 7.5e9
    assert any("out of memory" in i.message and "batch_size" in i.message for i in report.issues)


def test_a_template_that_adds_its_own_system_prompt_is_flagged(model_config):
    tok = AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)  # a fresh copy: the module fixture stays untouched
    tok.chat_template = "<|system|>\nYou are a helpful assistant.<|end|>\n" + tok.chat_template  # a default one
    system = [{"role": "system", "content": "Answer briefly."}]
    report = run_preflight(Dataset.from_list([row("Paris.", "Go away.", prompt=system + USER)] * 4),
                           TrainConfig(batch_size=2), tok, model_config)
    assert report.preview.count("<|system|>") == 2
    assert any("system prompt appears 2 times" in i.message for i in report.issues)


def test_max_length_beyond_the_context_matters_only_when_pairs_reach_it(tok, model_config):
    short = Dataset.from_list([row("Paris.", "Go away.")] * 8)
    report = run_preflight(short, TrainConfig(batch_size=4, max_length=512), tok, model_config)
    assert not any("context" in i.message for i in report.issues)  # the demo's 256 tokens are never reached
    long_answer = " ".join(["Paris is the capital of France."] * 40)
    long = Dataset.from_list([row(long_answer, "Go away.")] * 8)
    report = run_preflight(long, TrainConfig(batch_size=4, max_length=512), tok, model_config)
    assert any("beyond the model's context of 256" in i.message for i in report.issues)


def test_the_suggested_max_length_never_exceeds_the_context_and_says_the_data_does_not_fit(tok, model_config):
    long_answer = " ".join(["Paris is the capital of France."] * 40)  # ~300 tokens: beyond the demo's 256
    report = run_preflight(Dataset.from_list([row(long_answer, "Go away.")] * 8), TrainConfig(batch_size=4), tok,
                           model_config)
    assert report.lengths.longest > 256 and report.suggested["max_length"] == 256
    assert any(i.message.startswith("the data does not fit the model: more than 5% of pairs are longer than its "
                                    "context of 256 tokens") for i in report.issues)
    short = run_preflight(Dataset.from_list([row("Paris.", "Go away.")] * 8), TrainConfig(batch_size=4), tok,
                          model_config)
    assert short.suggested["max_length"] < 256 and not any("does not fit" in i.message for i in short.issues)


CONVERSATIONS = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "7 * 6?"}],
    USER,
]


def varied_rows(n: int) -> list[dict]:
    return [row(f"Answer {i}: " + "Paris. " * (i % 7), f"No {i}." + " Go away." * (i % 3),
                CONVERSATIONS[i % len(CONVERSATIONS)]) for i in range(n)]


def test_batched_tokenization_is_exactly_the_per_row_chat_template(tok):
    from prefapp.training.preflight import _length_batch, _tokenize

    rows = varied_rows(12)
    batch = {k: [r[k] for r in rows] for k in ("prompt", "chosen", "rejected")}
    got = _length_batch(batch, tok, max_length=10_000)
    expected = [tuple(map(len, _tokenize(r, tok))) for r in rows]
    assert list(zip(got["p"], got["c"], got["r"])) == expected


class CountingTokenizer:
    """The real tokenizer, counting how often a chat template is rendered (to see the cache at work)."""

    def __init__(self, tokenizer):
        self._tok, self.renders = tokenizer, 0

    def apply_chat_template(self, *args, **kwargs):
        self.renders += 1
        return self._tok.apply_chat_template(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        return self._tok(*args, **kwargs)

    def __len__(self):
        return len(self._tok)

    def __getattr__(self, name):
        return getattr(self._tok, name)


def test_an_unchanged_dataset_is_not_tokenized_twice(tok, model_config):
    dataset = Dataset.from_list(varied_rows(30))
    counting = CountingTokenizer(tok)
    first = run_preflight(dataset, TrainConfig(batch_size=2), counting, model_config)
    renders = counting.renders
    again = run_preflight(dataset, TrainConfig(batch_size=4), counting, model_config, ties_dropped=2)
    assert renders > 0 and counting.renders == renders  # served from the cache
    assert again.lengths == first.lengths and again.data.ties_dropped == 2
    run_preflight(dataset, TrainConfig(batch_size=2, max_length=64), counting, model_config)
    assert counting.renders > renders  # another max_length is another audit


def test_a_large_set_is_audited_on_a_random_sample_with_its_margin(tok, monkeypatch):
    from prefapp.training import preflight

    rows = varied_rows(400)
    full = audit_lengths(rows, tok, max_length=40)
    monkeypatch.setattr(preflight, "AUDIT_ROWS", 100)
    sample = audit_lengths(rows, tok, max_length=40)
    assert (sample.audited, sample.population) == (100, 400) and full.margin == 0.0
    assert sample.margin == pytest.approx(1.96 * (0.25 / 100 * 300 / 399) ** 0.5)
    assert abs(sample.truncated / 100 - full.truncated / 400) <= sample.margin * 2  # a fair sample, not the head
    assert "random sample of 100 of 400 pairs" in preflight.PreflightReport(
        preflight.check_data(Dataset.from_list(rows)), sample, estimate_memory({}, TrainConfig()), "", {}, []).markdown()
