"""The ONNX Runtime Stable Diffusion pipeline against diffusers, and the demo's quality."""

from __future__ import annotations

import dataclasses
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
from tests.conftest import WEIGHTS_DIR, load_model

SOURCE = WEIGHTS_DIR / "imagegen"
# The demo model's shapes against their ideal renders (README "How good the demo models
# are"): the goal is a mean overlap of 0.95 with no colour ring; these bars hold the level
# the committed weights reach (0.915 and 7.7/255), so that it cannot slip unseen.
OVERLAP_BAR, RING_BAR = 0.90, 10.0
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


@pytest.mark.parametrize("name", ["imagegen", "imagegen-int8", "imagegen-fp16"])
def test_an_image_does_not_depend_on_its_batch(imagegen_model, name: str) -> None:
    """Every precision: int8 quantizes its activations per row, not one scale a batch."""
    model = imagegen_model if name == "imagegen" else load_model("imagegen", name)
    params = ImageParams(steps=8, scheduler="euler_a")
    together = model.generate(PROMPTS, ["", ""], [5, 6], params)
    alone = np.concatenate(
        [model.generate([p], [""], [s], params) for p, s in zip(PROMPTS, [5, 6], strict=True)]
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


def _draw_held_out(model) -> tuple[list[shapes.Scene], np.ndarray]:
    """The held-out captions and one image of each (DDIM 25 steps, guidance 4, seed i)."""
    _, held = shapes.split_scenes()
    pixels = []
    for i in range(0, len(held), 16):
        chunk = held[i : i + 16]
        pixels.append(
            model.generate(
                [s.caption for s in chunk],
                [""] * len(chunk),
                list(range(i, i + len(chunk))),
                ImageParams(steps=25, guidance=4.0),
            )
        )
    return held, np.concatenate(pixels)


def _checker_accuracy(held: list[shapes.Scene], pixels: np.ndarray) -> tuple[float, float]:
    read = [shapes.read(p) for p in pixels]
    colour = np.mean([r[1] == s.colour for r, s in zip(read, held, strict=True)])
    shape = np.mean([r[0] == s.shape for r, s in zip(read, held, strict=True)])
    return float(colour), float(shape)


@pytest.fixture(scope="module")
def held_out(imagegen_model) -> tuple[list[shapes.Scene], np.ndarray]:
    return _draw_held_out(imagegen_model)


def test_held_out_captions_are_drawn_right(held_out) -> None:
    held, pixels = held_out
    assert len(held) >= 200
    colour, shape = _checker_accuracy(held, pixels)
    print(f"held-out captions: colour {colour:.1%}, shape {shape:.1%} of {len(held)}")
    assert colour >= 0.8 and shape >= 0.7


def test_clean_renders_score_full_overlap_and_no_ring() -> None:
    train, held = shapes.split_scenes()
    for s in train[::7] + held[::7]:
        overlap, ring = shapes.shape_quality(shapes.render(s, (1, -1)), s)
        assert overlap == 1.0 and ring < 1.0, s.caption
    # a square drawn as a circle, and a halo lighter than both colours, are caught
    square = shapes.Scene("square", "orange", "large", "center", "yellow")
    circle = dataclasses.replace(square, shape="circle")
    overlap, _ = shapes.shape_quality(shapes.render(circle), square)
    assert overlap < 0.9
    haloed = shapes.render(square).copy()
    haloed[9:23, 8] = haloed[9:23, 23] = 255  # white just outside the left and right sides
    clean_ring = shapes.shape_quality(shapes.render(square), square)[1]
    assert shapes.shape_quality(haloed, square)[1] > clean_ring + 5


def test_held_out_shapes_against_their_ideal_render(held_out) -> None:
    """Overlap with the ideal render (straight sides, no pinching) and the colour ring."""
    held, pixels = held_out
    quality = np.array([shapes.shape_quality(p, s) for p, s in zip(pixels, held, strict=True)])
    overlap, ring = quality[:, 0], quality[:, 1]
    for name in shapes.SHAPES:
        mine = [s.shape == name for s in held]
        print(f"{name}: mean overlap {overlap[mine].mean():.3f}")
    print(f"held-out shapes: mean overlap {overlap.mean():.3f}, ring mean {ring.mean():.1f}")
    assert overlap.mean() >= OVERLAP_BAR
    assert ring.mean() <= RING_BAR


# Mean absolute pixel difference (0..255) from float32 that each precision may reach on
# the held-out captions, the same seeds; int8 measured 0.10 (2026-12-02) and 0.06 (2026-12-03,
# the retrained weights), README's quality section.
PRECISION_PIXEL_BOUND = {"int8": 1.0, "fp16": 1.0}


@pytest.mark.parametrize("precision", sorted(PRECISION_PIXEL_BOUND))
def test_other_precisions_keep_the_checker_accuracy(held_out, precision: str) -> None:
    """``--precision int8`` and ``fp16`` against float32: the checker's shape and colour
    accuracy on the held-out captions drop by at most 2 points, and the pixels stay near."""
    model = load_model("imagegen", f"imagegen-{precision}")
    held, want = held_out
    _, got = _draw_held_out(model)
    (colour32, shape32), (colour, shape) = (
        _checker_accuracy(held, want),
        _checker_accuracy(held, got),
    )
    diff = float(np.abs(got.astype(np.int16) - want.astype(np.int16)).mean())
    print(
        f"{precision}: colour {colour:.1%} (float32 {colour32:.1%}), shape {shape:.1%} "
        f"(float32 {shape32:.1%}), mean pixel difference {diff:.2f}/255"
    )
    assert colour >= colour32 - 0.02 and shape >= shape32 - 0.02
    assert diff <= PRECISION_PIXEL_BOUND[precision]


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
