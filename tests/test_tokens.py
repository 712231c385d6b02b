"""Hub tokens stay out of DuckDB, exports, messages and logs."""

from __future__ import annotations

import logging

import pytest

from prefapp.config import ConfigError
from prefapp.preferences.export import push_to_hub
from prefapp.hosting.environment import RedactTokens, redact

TOKEN = "hf_" + "Sentinel0123456789abcdefXYZ"


def test_redact_hides_env_and_token_shaped_strings(monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "custom-secret-value")
    assert redact("Authorization: Bearer custom-secret-value") == "Authorization: Bearer hf_***"
    assert redact(f"bad token {TOKEN}!") == "bad token hf_***!"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "using %s", (TOKEN,), None)
    RedactTokens().filter(record)
    assert record.getMessage() == "using hf_***"


def test_a_failed_push_leaks_the_token_nowhere(service, monkeypatch, caplog) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    for _ in range(2):
        pair = service.next_pair("ann")
        service.vote(pair.pair_id, "A", "ann")
    result = service.export("with-token")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConfigError, match="push to someone/prefs failed") as failure:
        push_to_hub(result.dataset_dir, "someone/prefs", token=TOKEN)  # offline in tests: it fails
    assert TOKEN not in str(failure.value) and failure.value.__cause__ is None
    assert TOKEN not in caplog.text
    service.backup()
    service.close()  # the pair queue stopped first: its thread may be reading the store (then closing it races)
    files = [p for p in service.config.data_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".duckdb" for p in files) and any(p.suffix == ".parquet" for p in files)
    assert [p for p in files if TOKEN.encode() in p.read_bytes()] == []
