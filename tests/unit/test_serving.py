"""The served-model classes declare one shape, and their modules import no torch."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from genserve.config import PROJECT_ROOT
from genserve.gan.sampler import GanSampler
from genserve.imagegen.pipeline import ImagePipeline
from genserve.serving import ServedModel
from genserve.translation.translator import Translator

SERVED = [GanSampler, Translator, ImagePipeline]
# What a serving process imports of the library (services add bentoml and their own).
RUNTIME_MODULES = [
    "genserve.serving",
    "genserve.gan.sampler",
    "genserve.translation.files",
    "genserve.translation.search",
    "genserve.translation.tokenizer",
    "genserve.translation.translator",
    "genserve.imagegen.jobs",
    "genserve.imagegen.pipeline",
    "genserve.imagegen.schedulers",
]


@pytest.mark.parametrize("cls", SERVED, ids=lambda c: c.__name__)
def test_each_served_class_has_the_protocol_members(cls: type) -> None:
    assert ServedModel in cls.__mro__  # subclassed explicitly, so mypy checks every signature
    assert isinstance(inspect.getattr_static(cls, "provider"), property)
    for method in ("describe", "run_batch", "from_models_dir"):
        assert callable(getattr(cls, method)), method
    want = inspect.signature(ServedModel.from_models_dir)
    assert inspect.signature(cls.from_models_dir).parameters == want.parameters


def test_runtime_modules_import_no_torch() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {RUNTIME_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "heavy = ('torch', 'transformers', 'diffusers')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in heavy]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True)
