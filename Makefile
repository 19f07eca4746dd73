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

.PHONY: up test install system protos models lint typecheck bench clean

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

# Every model kind with committed demo weights (models/<kind>/; genserve.kinds has the
# table). ONNX is built from the committed weights, never retrained here; a kind's model is
# rebuilt when its weights or its library folder change.
KINDS := $(notdir $(wildcard models/*))

models: $(KINDS:%=$(MODELS_DIR)/%/genserve.json)

.SECONDEXPANSION:
$(MODELS_DIR)/%/genserve.json: $$(shell find models/$$* genserve/$$* -type f -not -name '*.pyc') \
		genserve/exporting.py genserve/artifacts.py $(VENV)/.installed
	$(BIN)/genserve models export $* --out $(MODELS_DIR)/$*

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
	for kind in $(KINDS) gateway; do $(BIN)/genserve bench $$kind || exit 1; done

# make train-<kind>: retrain a demo model into models/<kind>/ (long; see README)
train-%: install
	$(BIN)/genserve models train $*

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
