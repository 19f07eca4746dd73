"""The ONNX Runtime Stable Diffusion pipeline against diffusers, and the demo's quality."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genserve.config import PROJECT_ROOT
from genserve.errors import InvalidInput
from genserve.imagegen import shapes
from genserve.imagegen.pipeline import ImageParams
from tests.conftest import WEIGHTS_DIR

SOURCE = WEIGHTS_DIR / "imagegen"
PROMPTS = [
    "a small red circle at the top left on a blue background",
    "a large yellow triangle in the center on a black background",
]


@pytest.fixture(scope="module")
def reference():
    from genserve.imagegen.export import load_pipeline

    return load_pipeline(SOURCE)


@pytest.mark.parametrize("scheduler", ["ddim", "euler_a"])
def test_matches_diffusers(imagegen_model, reference, scheduler: str) -> None:
    from diffusers import DDIMScheduler, EulerAncestralDiscreteScheduler

    cls = DDIMScheduler if scheduler == "ddim" else EulerAncestralDiscreteScheduler
    reference.scheduler = cls.from_config(reference.scheduler.config)
    seeds = [11, 12]
    want = reference(
        PROMPTS,
        negative_prompt=["", "a blue square"],
        num_inference_steps=20,
        guidance_scale=4.0,
        height=32,
        width=32,
        output_type="np",
        generator=[torch.Generator().manual_seed(s) for s in seeds],
    ).images
    want = (want * 255).round().astype(np.uint8)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    noise = [lambda shape, g=g: torch.randn(shape, generator=g).numpy() for g in gens]
    got = imagegen_model.generate(
        PROMPTS,
        ["", "a blue square"],
        seeds,
        ImageParams(steps=20, scheduler=scheduler),
        noise=noise,
    )
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    print(f"{scheduler}: mean abs pixel difference {diff.mean():.4f}/255, max {diff.max()}")
    assert diff.mean() <= 2.0


def test_an_image_does_not_depend_on_its_batch(imagegen_model) -> None:
    params = ImageParams(steps=8, scheduler="euler_a")
    together = imagegen_model.generate(PROMPTS, ["", ""], [5, 6], params)
    alone = np.concatenate(
        [
            imagegen_model.generate([p], [""], [s], params)
            for p, s in zip(PROMPTS, [5, 6], strict=True)
        ]
    )
    diff = np.abs(together.astype(np.int16) - alone.astype(np.int16)).max()
    print(f"largest pixel difference batched vs alone: {diff}")
    assert diff <= 1


def test_checker_reads_rendered_images() -> None:
    train, held = shapes.split_scenes()
    scenes = train + held
    right = {"shape": 0, "colour": 0}
    for s in scenes:
        shape, colour, _ = shapes.read(shapes.render(s, (1, -1)))
        right["shape"] += shape == s.shape
        right["colour"] += colour == s.colour
    assert right["shape"] / len(scenes) >= 0.98 and right["colour"] / len(scenes) >= 0.98


def test_held_out_captions_are_drawn_right(imagegen_model) -> None:
    _, held = shapes.split_scenes()
    assert len(held) >= 200
    pixels = []
    for i in range(0, len(held), 16):
        chunk = held[i : i + 16]
        pixels.append(
            imagegen_model.generate(
                [s.caption for s in chunk],
                [""] * len(chunk),
                list(range(i, i + len(chunk))),
                ImageParams(steps=25, guidance=4.0),
            )
        )
    read = [shapes.read(p) for p in np.concatenate(pixels)]
    colour = np.mean([r[1] == s.colour for r, s in zip(read, held, strict=True)])
    shape = np.mean([r[0] == s.shape for r, s in zip(read, held, strict=True)])
    print(f"held-out captions: colour {colour:.1%}, shape {shape:.1%} of {len(held)}")
    assert colour >= 0.8 and shape >= 0.7


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (ImageParams(width=33), "width"),
        (ImageParams(width=4096), "width"),
        (ImageParams(height=72), "height"),  # the demo serves up to 2x its trained 32
        (ImageParams(height=8), "height"),
        (ImageParams(steps=0), "steps"),
        (ImageParams(steps=500), "steps"),
        (ImageParams(guidance=-1), "guidance_scale"),
        (ImageParams(guidance=100), "guidance_scale"),
        (ImageParams(scheduler="plms"), "scheduler"),
    ],
)
def test_bad_parameters_name_the_field(imagegen_model, params, field) -> None:
    with pytest.raises(InvalidInput) as info:
        imagegen_model.check(params, ["a red circle"])
    assert info.value.field == field


def test_a_long_prompt_names_the_field(imagegen_model) -> None:
    with pytest.raises(InvalidInput) as info:
        imagegen_model.check(ImageParams(), ["x" * 10_000])
    assert info.value.field == "prompt"


def test_imagegen_service_imports_no_torch(imagegen_model_dir: Path) -> None:
    code = (
        "import sys; from pathlib import Path\n"
        "import services.imagegen\n"
        "from genserve.config import RuntimeSettings\n"
        "from genserve.imagegen.pipeline import ImagePipeline, ImageParams\n"
        f"p = ImagePipeline(Path({str(imagegen_model_dir)!r}), RuntimeSettings())\n"
        "p.generate(['a red circle'], [''], [1], ImageParams(steps=2))\n"
        "heavy = ('torch', 'transformers', 'diffusers')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in heavy]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True)
