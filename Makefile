# genserve: `make up` serves the demo models, `make test` runs every check.
# Both install what they need into .venv, idempotently.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
MODELS_DIR ?= build/models
HOST ?= 127.0.0.1
GAN_PORT ?= 3000

.PHONY: up test install models lint typecheck unit integration e2e bench train-gan clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements/serve.txt requirements/dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

models: $(MODELS_DIR)/gan/genserve.json

# ONNX is built from the committed weights, never retrained here.
$(MODELS_DIR)/gan/genserve.json: models/gan/genserve.json models/gan/generator.safetensors \
		genserve/gan/export.py genserve/gan/model.py $(VENV)/.installed
	$(BIN)/genserve models export gan --out $(MODELS_DIR)/gan

up: install models
	@echo "genserve GAN service (demo model, no auth: local development)"
	@echo "  REST     http://$(HOST):$(GAN_PORT)/v1/samples  /v1/interpolate  /v1/model"
	@echo "  API docs http://$(HOST):$(GAN_PORT)/v1/docs"
	@echo "  metrics  http://$(HOST):$(GAN_PORT)/metrics"
	GENSERVE_MODELS_DIR=$(MODELS_DIR) $(BIN)/bentoml serve services.gan:GanService \
		--host $(HOST) --port $(GAN_PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: install models lint typecheck
	GENSERVE_MODELS_DIR=$(MODELS_DIR) $(BIN)/pytest

bench: install models
	$(BIN)/genserve bench gan

train-gan: install
	$(BIN)/genserve models train gan

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
