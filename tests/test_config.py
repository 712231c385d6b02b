import re
from dataclasses import replace

import pytest

from prefapp.config import AppConfig, ConfigError, SamplingConfig, TrainConfig


def test_defaults_are_valid():
    SamplingConfig().validate()
    TrainConfig().check_pairs(100)


@pytest.mark.parametrize(
    "kwargs, fix",
    [
        ({"beta": 0}, "start with 0.1"),
        ({"beta": -1}, "start with 0.1"),
        ({"learning_rate": 1.0}, "1e-5..1e-3 for LoRA"),
        ({"num_epochs": 0}, "one epoch"),
        ({"batch_size": 0}, "1..1024"),
        ({"max_length": 4}, "fits prompt + answer"),
        ({"lora_r": 0}, "1..1024"),
        ({"lora_dropout": 1.0}, "[0, 1)"),
        ({"loss_type": "sigmod"}, "ipo"),
        ({"method": "ipo"}, "'dpo' (pairs)"),
    ],
)
def test_absurd_training_settings_name_the_fix(kwargs, fix):
    with pytest.raises(ConfigError, match=re.escape(fix)):  # refused when built: an invalid TrainConfig cannot exist
        TrainConfig(**kwargs)
    with pytest.raises(ConfigError, match=re.escape(fix)):  # also when derived from a valid one
        replace(TrainConfig(), **kwargs)


def test_training_settings_are_checked_once_per_round(tmp_path, monkeypatch):
    """A round's settings are checked when its TrainConfig is built, and nowhere after: count the checks."""
    calls = []
    check = TrainConfig.__post_init__
    monkeypatch.setattr(TrainConfig, "__post_init__", lambda self: (calls.append(1), check(self))[1])
    config = TrainConfig(batch_size=2)
    assert len(calls) == 1
    from datasets import Dataset

    from prefapp.training.job import TrainingJob

    rows = [{"prompt": [{"role": "user", "content": f"q{i}"}], "chosen": [{"role": "assistant", "content": "a"}],
             "rejected": [{"role": "assistant", "content": "b"}]} for i in range(4)]
    TrainingJob(tmp_path / "no-model", Dataset.from_list(rows), config, tmp_path / "out")  # checks inputs, not started
    assert len(calls) == 1


def test_batch_larger_than_data_and_no_data():
    with pytest.raises(ConfigError, match="at most 3"):
        TrainConfig(batch_size=8).check_pairs(3)
    with pytest.raises(ConfigError, match="label some pairs"):
        TrainConfig().check_pairs(0)


@pytest.mark.parametrize(
    "kwargs", [{"temperature": 0}, {"temperature": 50}, {"top_p": 0}, {"top_p": 1.5}, {"max_new_tokens": 0}]
)
def test_absurd_sampling_settings_are_refused(kwargs):
    with pytest.raises(ConfigError, match="out of range: use"):
        SamplingConfig(**kwargs).validate()


def test_app_config_paths_follow_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFAPP_DB", raising=False)
    config = AppConfig(data_dir=tmp_path)
    assert config.db_path == tmp_path / "prefapp.duckdb"
    assert config.exports_dir == tmp_path / "exports"
    assert config.adapters_dir == tmp_path / "adapters"


def test_environment_sets_model_and_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFAPP_MODEL", "demo")
    monkeypatch.setenv("PREFAPP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PREFAPP_DB", raising=False)
    assert AppConfig().model == "auto" and AppConfig().data_dir != tmp_path  # a plain config never reads it
    config = AppConfig.from_env()
    assert config.model == "demo"
    assert config.db_path == tmp_path / "prefapp.duckdb"
