from __future__ import annotations

import os
from pathlib import Path

import pytest

from genserve.config import PROJECT_ROOT, RuntimeSettings

MODELS_DIR = Path(os.environ.get("GENSERVE_MODELS_DIR", PROJECT_ROOT / "build" / "models"))
WEIGHTS_DIR = PROJECT_ROOT / "models"


@pytest.fixture(scope="session")
def gan_model_dir() -> Path:
    folder = MODELS_DIR / "gan"
    assert (folder / "genserve.json").is_file(), "build the models first: make models"
    return folder


@pytest.fixture(scope="session")
def gan_sampler(gan_model_dir: Path):
    from genserve.gan.sampler import GanSampler

    return GanSampler(gan_model_dir, RuntimeSettings())
