from __future__ import annotations

import os
from pathlib import Path

import pytest

from genserve.config import PROJECT_ROOT, RuntimeSettings

MODELS_DIR = Path(os.environ.get("GENSERVE_MODELS_DIR", PROJECT_ROOT / "build" / "models"))
WEIGHTS_DIR = PROJECT_ROOT / "models"


def built(kind: str) -> Path:
    folder = MODELS_DIR / kind
    assert (folder / "genserve.json").is_file(), "build the models first: make models"
    return folder


@pytest.fixture(scope="session")
def gan_model_dir() -> Path:
    return built("gan")


@pytest.fixture(scope="session")
def gan_sampler(gan_model_dir: Path):
    from genserve.gan.sampler import GanSampler

    return GanSampler(gan_model_dir, RuntimeSettings())


@pytest.fixture(scope="session")
def translation_model_dir() -> Path:
    return built("translation")


@pytest.fixture(scope="session")
def translator(translation_model_dir: Path):
    from genserve.translation.translator import Translator

    return Translator(translation_model_dir, RuntimeSettings())


@pytest.fixture(scope="session")
def imagegen_model_dir() -> Path:
    return built("imagegen")


@pytest.fixture(scope="session")
def image_pipeline(imagegen_model_dir: Path):
    from genserve.imagegen.pipeline import ImagePipeline

    return ImagePipeline(imagegen_model_dir, RuntimeSettings())
