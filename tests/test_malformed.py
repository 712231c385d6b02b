"""Broken and absurd input gets a message naming the problem and the fix, and changes nothing already stored."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from prefapp.config import ConfigError, TrainConfig
from prefapp.preferences.prompts import MAX_LINE_CHARS


def snapshot(service) -> tuple:
    store = service.store
    return store.prompt_count(), store.pair_count(), len(store.votes()), len(store.rounds()), service.sampling


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


BAD_FILES = {  # file name, bytes, what the message must say
    "broken": ("p.jsonl", b'{"prompt": "fine"}\n{"prompt": "cut\n', "line 2 is not valid JSON.*fix or remove"),
    "wrong column": ("p.jsonl", b'{"question": "x"}\n', 'line 1 needs a "prompt" string or a "messages" list'),
    "not an object": ("p.jsonl", b'["a", "b"]\n', 'line 1 needs a "prompt"'),
    "utf-16": ("p.txt", "a prompt\n".encode("utf-16"), "not UTF-8 text.*re-save it as UTF-8"),
    "latin-1": ("p.txt", "caf\xe9 au lait\n".encode("latin-1"), "not UTF-8 text"),
    "empty": ("p.jsonl", b"", "contains no prompts"),
    "blank lines": ("p.txt", b"\n  \n\n", "contains no prompts"),
    "huge line": ("p.jsonl", b'{"prompt": "' + b"x" * (MAX_LINE_CHARS + 10) + b'"}\n', "characters \\(limit.*split"),
    "long txt line": ("p.txt", b"y" * 25_000 + b"\n", "line 1 is 25000 characters.*shorten or split"),
    "wrong type": ("p.csvx", b"a,b\n", "unsupported prompt file type"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_malformed_prompt_files_are_refused_whole(service, tmp_path, case) -> None:
    name, data, message = BAD_FILES[case]
    before = snapshot(service)
    with pytest.raises(ConfigError, match=message):
        service.import_prompts(write(tmp_path, name, data))
    assert snapshot(service) == before


def test_a_100_mb_line_gets_a_message_not_a_crash(service, tmp_path) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("wb") as f:
        f.write(b'{"prompt": "')
        for _ in range(100):
            f.write(b"z" * 2**20)
        f.write(b'"}\n')
    before = snapshot(service)
    with pytest.raises(ConfigError, match=r"line 1 is \d+ characters \(limit"):
        service.import_prompts(path)
    assert snapshot(service) == before


def test_a_byte_order_mark_is_not_part_of_the_first_prompt(service, tmp_path) -> None:
    path = write(tmp_path, "bom.jsonl", "\ufeff".encode() + json.dumps({"prompt": "Hello BOM"}).encode() + b"\n")
    assert service.import_prompts(path).startswith("added 1")


def test_empty_typed_and_too_long_prompts(service) -> None:
    before = snapshot(service)
    with pytest.raises(ConfigError, match="type one prompt per line"):
        service.add_typed_prompts(" \n\t\n")
    with pytest.raises(ConfigError, match="prompt 2: the prompt is \\d+ tokens but the model's context is "
                                          "\\d+.*shorten the prompt or lower max_new_tokens. Nothing was added"):
        service.add_typed_prompts("a fine question?\n" + "word " * 1000)
    assert snapshot(service) == before
    messages = [{"role": "user", "content": "   "}]  # empty in a messages list: skipped and counted by the store
    path = service.config.data_dir / "m.jsonl"
    path.write_text(json.dumps({"messages": messages}) + "\n" + json.dumps({"prompt": ""}) + "\n")
    assert "skipped 2 invalid" in service.import_prompts(path)
    assert snapshot(service) == before


@pytest.mark.parametrize("knobs, message", [
    (dict(temperature=1e9, top_p=0.9, max_new_tokens=64), "temperature=1000000000.0 is out of range"),
    (dict(temperature=1.0, top_p=0.0, max_new_tokens=64), "top_p=0.0 is out of range"),
    (dict(temperature=1.0, top_p=0.9, max_new_tokens=10**9), "max_new_tokens=1000000000 is out of range"),
])
def test_absurd_generation_settings(service, knobs, message) -> None:
    before = snapshot(service)
    with pytest.raises(ConfigError, match=message):
        service.set_sampling(**knobs)
    assert snapshot(service) == before


@pytest.mark.parametrize("change, message", [
    (dict(learning_rate=5.0), "learning_rate=5.0 is outside any sane range"),
    (dict(batch_size=-1), "batch_size=-1 must be in 1..1024"),
    (dict(num_epochs=1e6), "num_epochs=1000000.0 must be in"),
    (dict(max_length=2), "max_length=2 must be in 16..131072"),
    (dict(beta=0.0), "beta=0.0 must be in"),
])
def test_absurd_training_settings_start_no_round(service, change, message) -> None:
    pair = service.next_pair("ann")
    service.vote(pair.pair_id, "A", "ann")
    before = snapshot(service)
    with pytest.raises(ConfigError, match=message):
        service.start_training(replace(TrainConfig(batch_size=1), **change))
    assert snapshot(service) == before and not service.config.adapters_dir.exists()


def test_user_paths_stay_in_the_data_dir(service) -> None:
    assert service.user_path("imports/p.jsonl") == (service.config.data_dir / "imports/p.jsonl").resolve()
    with pytest.raises(ConfigError, match="outside the data directory"):
        service.user_path("../../etc/passwd")
