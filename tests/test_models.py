from pathlib import Path

import pytest

from prefapp.config import DEFAULT_HUB_MODEL, DEMO_MODEL_DIR, ConfigError
from prefapp.models import resolve_model


def test_auto_falls_back_to_the_demo_model_offline_and_says_why():
    choice = resolve_model("auto")  # HF_HUB_OFFLINE=1 (conftest): SmolLM2 is neither cached nor downloadable
    assert Path(choice.source) == DEMO_MODEL_DIR
    assert DEFAULT_HUB_MODEL in choice.reason and "bundled demo model" in choice.reason


def test_local_directory_and_hub_id(tmp_path):
    assert resolve_model(str(DEMO_MODEL_DIR)).reason.startswith("local model directory")
    assert resolve_model("org/some-model").source == "org/some-model"
    with pytest.raises(ConfigError, match="save_pretrained"):
        resolve_model(str(tmp_path))


def test_policy_loads_the_demo_model_with_a_chat_template(demo_policy):
    assert demo_policy.tokenizer.chat_template
    assert demo_policy.tokenizer.padding_side == "left"
    assert demo_policy.device == "cpu"
    with pytest.raises(ConfigError, match="not loaded"):
        with demo_policy.using("round-99"):
            pass
