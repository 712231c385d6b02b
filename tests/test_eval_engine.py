"""Evaluation through a real engine (`transformers serve` with the demo model, as its own process): eval answers come
from the generator backend, never from weights in this process. An engine that cannot load a round at run time
(transformers serve cannot) fails that round's eval pair with the backend's merge-and-serve message; nothing is
recorded and the local weights are never loaded instead."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from prefapp.config import DEMO_MODEL_DIR, AppConfig, EvalConfig, SamplingConfig
from prefapp.labeling.backends import PublishUnsupported
from prefapp.service import PrefService
from tests.engine import Engine, transformers_serve
from tests.test_browser_evaluate import untrained_round


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Iterator[Engine]:
    with transformers_serve(DEMO_MODEL_DIR, tmp_path_factory.mktemp("engine")) as running:
        yield running


def test_a_round_the_engine_cannot_load_fails_its_eval_pair_with_the_publish_message(engine: Engine, tmp_path,
                                                                                      demo_choice) -> None:
    config = AppConfig(model="demo", data_dir=tmp_path / "data", sampling=SamplingConfig(max_new_tokens=16),
                       generator_url=engine.url)
    config = replace(config, evaluation=EvalConfig(queue_target=2, queue_batch=2, check_prompts=0))
    untrained_round(config, demo_choice.source)
    service = PrefService.open(config, choice=demo_choice, seed=0)
    try:
        assert service.evaluation.policies() == ["base", "round-1"]  # known to the app, not loaded in the engine
        assert service.eval_comparison() == ("base", "round-1")
        with pytest.raises(PublishUnsupported, match="prefapp merge --round 1 .*--served-model-name round-1"):
            service.eval_next("ann")
        assert service.evaluation.queue.ready() == 0 and service.store.eval_votes() == []
        assert not service.policy.loaded  # no silent fallback to the weights in this process
        assert service.evaluation.provenance() == {"backend": engine.url, "backend_model": str(DEMO_MODEL_DIR)}
    finally:
        service.close()
