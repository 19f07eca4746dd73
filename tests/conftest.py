"""Fixtures for every model kind, from genserve.kinds: ``<kind>_model_dir`` (the built
model folder) and ``<kind>_model`` (the served model, loaded once per session)."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from genserve import kinds
from genserve.config import PROJECT_ROOT, ModelSettings, RuntimeSettings

MODELS_DIR = Path(os.environ.get("GENSERVE_MODELS_DIR", PROJECT_ROOT / "build" / "models"))
WEIGHTS_DIR = PROJECT_ROOT / "models"


def built(kind: str) -> Path:
    folder = MODELS_DIR / kind
    assert (folder / "genserve.json").is_file(), "build the models first: make models"
    return folder


def load_model(kind: str, folder: str) -> Any:
    """The built model folder ``folder`` of ``kind``, loaded as its service loads it."""
    built(folder)
    return kinds.get(kind).load(ModelSettings(dir=MODELS_DIR), RuntimeSettings(), folder)


def _model_dir(name: str) -> Callable[[], Path]:
    @pytest.fixture(scope="session", name=f"{name}_model_dir")
    def fixture() -> Path:
        return built(name)

    return fixture


def _model(name: str) -> Callable[..., Any]:
    @pytest.fixture(scope="session", name=f"{name}_model")
    def fixture(request: pytest.FixtureRequest) -> Any:
        request.getfixturevalue(f"{name}_model_dir")
        return load_model(name, name)

    return fixture


def pytest_collection_finish(session: pytest.Session) -> None:
    """Every module the suite imported (torch, transformers, diffusers, ONNX: about 450,000
    objects, alive until the run ends) out of the collector's way. Without it, a full
    collection of the runner's heap took up to half a second (measured with gc.callbacks),
    and a test that times a service from here (tests/e2e/test_probes.py, a 200 ms budget)
    failed in CI timing the runner's pause instead. The services do the same once loaded
    (services/base.py)."""
    gc.collect()
    gc.freeze()


@pytest.fixture
def no_gc_pauses() -> Iterator[None]:
    """For a test that holds something it times from this process to a sub-second budget:
    the runner's collector is paused while it runs. The tests themselves build up to half
    a million objects (models, graphs, fuzzers), and one full collection of them took up
    to 0.3 s here: the budget is the service's, not the runner's."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


for _kind in kinds.names():
    globals()[f"{_kind}_model_dir"] = _model_dir(_kind)
    globals()[f"{_kind}_model"] = _model(_kind)
