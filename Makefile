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
# through Playwright), prometheus (promtool rule tests, the live-Prometheus test), wrk
# (HTTP load in C: the probes-under-saturation test, python -m loadtests.concurrency) and
# grammalecte-cli (an offline French grammar checker: the demo corpus's French).
SYSTEM_TOOLS := /usr/bin/chromium /usr/bin/prometheus /usr/bin/wrk /usr/bin/grammalecte-cli
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: up test compose-test install system protos models model-files lint typecheck bench loadtest soak clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements/serve.txt requirements/export.txt requirements/dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# The KServe Python SDK in an environment of its own, as its users run it (it cannot share
# .venv: it pins psutil<6); tests/e2e/test_kserve_sdk.py drives the gateway with it.
KSERVE_VENV := .venv-kserve

$(KSERVE_VENV)/.installed: requirements/kserve.txt
	test -x $(KSERVE_VENV)/bin/python || $(PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(KSERVE_VENV)/bin/python -m pip install --quiet -r requirements/kserve.txt
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
# The other precisions each kind exports in (ModelKind.precisions; a unit test keeps the
# two equal), each into <kind>-<precision> beside its float32 folder.
PRECISION_MODELS := translation-int8 imagegen-int8 imagegen-fp16

MODEL_FILES := $(KINDS:%=$(MODELS_DIR)/%/genserve.json) $(PRECISION_MODELS:%=$(MODELS_DIR)/%/genserve.json)
# The exports run EXPORT_JOBS at a time: each is mostly one thread (torch's tracing, then
# the parity checks), and on 2 cores two imagegen exports at once took 94 s against 174 s
# one after the other. Their progress bars interleave.
EXPORT_JOBS ?= 2

models: install
	@$(MAKE) --no-print-directory -j$(EXPORT_JOBS) model-files

model-files: $(MODEL_FILES)

.SECONDEXPANSION:
kind_of = $(firstword $(subst -, ,$(1)))
$(PRECISION_MODELS:%=$(MODELS_DIR)/%/genserve.json): $(MODELS_DIR)/%/genserve.json: \
		$$(shell find models/$$(call kind_of,$$*) genserve/$$(call kind_of,$$*) -type f -not -name '*.pyc') \
		genserve/exporting.py genserve/artifacts.py $(VENV)/.installed
	$(BIN)/genserve models export $(call kind_of,$*) --precision $(lastword $(subst -, ,$*)) --out $(MODELS_DIR)/$*

$(MODELS_DIR)/%/genserve.json: $$(shell find models/$$* genserve/$$* -type f -not -name '*.pyc') \
		genserve/exporting.py genserve/artifacts.py $(VENV)/.installed
	$(BIN)/genserve models export $* --out $(MODELS_DIR)/$*

up: install models
	GENSERVE_MODELS_DIR=$(abspath $(MODELS_DIR)) $(BIN)/genserve serve --host $(HOST) --auth $(AUTH)

# make loadtest: the Locust load tests (loadtests/README.md). PROFILE=smoke|mix|ramp|spike|stress
# (default smoke). URL=http://127.0.0.1:3000 [GRPC=127.0.0.1:3001] loads a running gateway (the
# key in GENSERVE_LOADTEST_KEY when auth is on); without URL the stack is started on free
# loopback ports (auth off, rate limits raised) and stopped after. LOADTEST_ARGS: more options,
# e.g. LOADTEST_ARGS="--users 22 --seconds 30 --family gan". Reports: build/loadtests/<profile>/.
PROFILE ?= smoke
URL ?=
GRPC ?=
LOADTEST_ARGS ?=

loadtest: install $(if $(URL),,models)
	GENSERVE_MODELS_DIR=$(abspath $(MODELS_DIR)) $(PY) -m loadtests --profile $(PROFILE) \
		$(if $(URL),--url $(URL)) $(if $(GRPC),--grpc $(GRPC)) $(LOADTEST_ARGS)

# make soak: the product mix at a steady rate for 30 minutes with every process's memory
# sampled, then judged (loadtests/soak.py; not in CI). Defaults: 31 users at 2 tasks/s,
# 70% of the capacity measured on 2026-12-02 (47% of the one measured since: BENCHMARKS.md;
# 44 users for 70% of it); SOAK_ARGS="--users N --wait pace:R --minutes M".
# Reports: build/loadtests/soak/.
SOAK_ARGS ?=

soak: install models
	GENSERVE_MODELS_DIR=$(abspath $(MODELS_DIR)) $(PY) -m loadtests.soak $(SOAK_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: install models system lint typecheck $(KSERVE_VENV)/.installed
	GENSERVE_MODELS_DIR=$(MODELS_DIR) $(BIN)/pytest

# make compose-test: docker-compose.yml's stack built and run in containers, tested from the
# host (tests/compose; deploy/README.md, "What is verified"). Installs and starts Docker
# where none runs, makes local base images where the public ones cannot be pulled, builds
# genserve:cpu, then pytest brings the stack up, tests it and ends with `down -v`.
compose-test: install
	bash deploy/docker/local/setup.sh engine images build
	. build/docker/images.env && $(BIN)/pytest -m compose tests/compose
	cat build/compose-test/report.json

bench: install models
	for kind in $(KINDS) gateway; do $(BIN)/genserve bench $$kind || exit 1; done

# make train-<kind>: retrain a demo model into models/<kind>/ (long; see README)
train-%: install
	$(BIN)/genserve models train $*

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
