"""API parameters are checked against the endpoint's type hints and refused, never coerced."""

from __future__ import annotations

from typing import Literal

import pytest

from prefapp.config import ConfigError
from prefapp.hosting.params import check_call


def endpoint(beta: float = 0.1, batch_size: int = 2, precompute: bool = False, loss_type: str = "sigmoid",
             choice: Literal["A", "B", "tie"] = "A", note: str | None = None) -> None:
    """A stand-in with the hints the API endpoints use."""


@pytest.mark.parametrize("kwargs, message", [
    ({"precompute": "false"}, "precompute='false' is not a boolean: send true or false"),
    ({"precompute": 0}, "not a boolean"),
    ({"batch_size": 2.7}, "batch_size=2.7 is not a whole number: send an integer such as 3"),
    ({"batch_size": "2"}, "batch_size='2' is not a whole number"),
    ({"batch_size": True}, "not a whole number"),
    ({"beta": "0.1"}, "beta='0.1' is not a finite number"),
    ({"beta": float("nan")}, "not a finite number"),
    ({"loss_type": 3}, "loss_type=3 is not text"),
    ({"choice": "C"}, "choice='C' is not allowed: send one of 'A', 'B', 'tie'"),
    ({"note": 5}, "note=5 is not text"),
])
def test_wrong_types_are_refused_naming_the_fix(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_call(endpoint, (), kwargs)


def test_right_types_pass_and_whole_floats_become_ints() -> None:
    args, kwargs = check_call(endpoint, (0.2, 4.0), {"precompute": True, "choice": "tie", "note": None})
    assert args == (0.2, 4, True) and kwargs == {"choice": "tie", "note": None}
    args, _ = check_call(endpoint, (1, 3), {})
    assert args[:2] == (1.0, 3) and isinstance(args[0], float)


def test_the_api_refuses_wrong_types_and_answers_in_plain_text(service) -> None:
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from prefapp.ui.app import PrefUI
    from tests.browser import served

    with served(PrefUI(service).blocks) as url:
        client = Client(url, verbose=False)
        with pytest.raises(AppError, match="precompute_ref_log_probs='false' is not a boolean: send true or false"):
            client.predict(precompute_ref_log_probs="false", api_name="/train")
        with pytest.raises(AppError, match="batch_size=2.7 is not a whole number"):
            client.predict(batch_size=2.7, api_name="/train")
        with pytest.raises(AppError, match="choice='C' is not allowed"):
            client.predict("some-pair", "C", "ann", api_name="/vote")
        with pytest.raises(AppError) as refused:
            client.predict(save_steps=-1, api_name="/train")
        assert "must be >= 0" in str(refused.value) and "&gt;" not in str(refused.value)
        pair_id, *_ = client.predict("ann", api_name="/next_pair")  # the right types still work
        assert client.predict(pair_id, "A", "ann", api_name="/vote").startswith("Recorded")
    assert service.rounds() == []  # nothing was trained on a refused call
