# genserve: `make up` serves the demo models, `make test` runs every check.
# Both install what they need into .venv, idempotently.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
MODELS_DIR ?= build/models
HOST ?= 127.0.0.1
AUTH ?= off
# Debian packages the tests drive, installed if missing: chromium (the playground test,
# through Playwright) and prometheus (promtool rule tests, the live-Prometheus test).
SYSTEM_TOOLS := /usr/bin/chromium /usr/bin/prometheus
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: up test install system protos models lint typecheck bench train-gan train-translation train-imagegen clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements/serve.txt requirements/dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

system: $(SYSTEM_TOOLS)

/usr/bin/%:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $*

# The gRPC modules are committed; regenerate them after changing the .proto.
protos: install
	$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. \
		genserve/protocol/inference.proto

models: $(MODELS_DIR)/gan/genserve.json $(MODELS_DIR)/translation/genserve.json \
	$(MODELS_DIR)/imagegen/genserve.json

# ONNX is built from the committed weights, never retrained here.
$(MODELS_DIR)/gan/genserve.json: models/gan/genserve.json models/gan/generator.safetensors \
		genserve/gan/export.py genserve/gan/model.py $(VENV)/.installed
	$(BIN)/genserve models export gan --out $(MODELS_DIR)/gan

$(MODELS_DIR)/translation/genserve.json: $(wildcard models/translation/*) \
		genserve/translation/export.py $(VENV)/.installed
	$(BIN)/genserve models export translation --out $(MODELS_DIR)/translation

$(MODELS_DIR)/imagegen/genserve.json: $(shell find models/imagegen -type f 2>/dev/null) \
		genserve/imagegen/export.py $(VENV)/.installed
	$(BIN)/genserve models export imagegen --out $(MODELS_DIR)/imagegen

up: install models
	GENSERVE_MODELS_DIR=$(abspath $(MODELS_DIR)) $(BIN)/genserve serve --host $(HOST) --auth $(AUTH)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: install models system lint typecheck
	GENSERVE_MODELS_DIR=$(MODELS_DIR) $(BIN)/pytest

bench: install models
	$(BIN)/genserve bench gan
	$(BIN)/genserve bench translation
	$(BIN)/genserve bench imagegen
	$(BIN)/genserve bench gateway

train-gan: install
	$(BIN)/genserve models train gan

train-translation: install
	$(BIN)/genserve models train translation

train-imagegen: install
	$(BIN)/genserve models train imagegen

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
