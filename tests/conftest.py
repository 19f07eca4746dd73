"""Fixtures for every model kind, from genserve.kinds: ``<kind>_model_dir`` (the built
model folder) and ``<kind>_model`` (the served model, loaded once per session)."""

from __future__ import annotations

import os
from collections.abc import Callable
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


def _model_dir(name: str) -> Callable[[], Path]:
    @pytest.fixture(scope="session", name=f"{name}_model_dir")
    def fixture() -> Path:
        return built(name)

    return fixture


def _model(name: str) -> Callable[..., Any]:
    @pytest.fixture(scope="session", name=f"{name}_model")
    def fixture(request: pytest.FixtureRequest) -> Any:
        request.getfixturevalue(f"{name}_model_dir")
        return kinds.get(name).load(ModelSettings(dir=MODELS_DIR), RuntimeSettings(), name)

    return fixture


for _kind in kinds.names():
    globals()[f"{_kind}_model_dir"] = _model_dir(_kind)
    globals()[f"{_kind}_model"] = _model(_kind)
