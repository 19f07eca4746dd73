"""``genserve bench imagegen``: seconds per image, genserve (ONNX Runtime) against
diffusers (PyTorch), on the demo model and on a random-weight pipeline of Stable
Diffusion 1.5 dimensions at 256x256; same prompt, steps, scheduler (DDIM) and
guidance, same thread count, in turns in one process (the median of three rounds).
"""

from __future__ import annotations

import functools
import gc
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROMPT = "a small red circle at the top left on a blue background"


def _seconds(fn: Callable[[], object], repeats: int) -> float:
    """Seconds a call of ``fn``, already warm, over ``repeats`` calls."""
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats


def _sd15_random(folder: Path, demo: Path) -> None:
    """A random-weight pipeline with SD 1.5's UNet, VAE and text-encoder dimensions."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from genserve.imagegen.train import DDIM_EXTRA, SCHEDULER

    torch.manual_seed(0)
    tok = CLIPTokenizer.from_pretrained(str(demo / "tokenizer"), model_max_length=77)
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tok),
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    )
    unet = UNet2DConditionModel(sample_size=32, cross_attention_dim=768)  # SD 1.5 defaults
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        sample_size=256,
    )
    pipe: Any = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tok,
        unet=unet,
        scheduler=DDIMScheduler(**SCHEDULER, **DDIM_EXTRA),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder), safe_serialization=True)


def bench(threads: int, repeats: int = 2, rounds: int = 3) -> list[dict[str, Any]]:
    import torch
    from tqdm import tqdm

    from genserve.config import PROJECT_ROOT, RuntimeSettings
    from genserve.exporting import quantize_int8
    from genserve.imagegen.export import export, load_pipeline
    from genserve.imagegen.optimize import fuse_attention_file
    from genserve.imagegen.pipeline import UNET_FILE, ImageParams, ImagePipeline
    from genserve.timing import Turns, turns

    torch.set_num_threads(threads)
    settings = RuntimeSettings(intra_op_threads=threads)
    demo = PROJECT_ROOT / "models" / "imagegen"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sd15 = Path(tmp) / "sd15"
        # (label, folder, side, step counts, whether the unfused export takes turns).
        # At SD 1.5 size the text encoder and VAE decoder cost one to four UNet steps,
        # depending on the machine (the decoder's convolutions, where ONNX Runtime runs
        # at PyTorch's speed, against the UNet's 3.4 GB of weights read every step), so
        # a 5-step image weighs them more than the denoising a user runs: 25 is the
        # service's default. Two step counts also split a system's time into its fixed
        # part and its time per step. The unfused export's A/B is the demo's (1.03x at
        # SD 1.5 size, BENCHMARKS), which spares the big case a turn per round.
        cases = [
            ("demo model, 32x32", demo, 32, (25,), True),
            ("SD 1.5 dimensions, random weights, 256x256", sd15, 256, (5, 25), False),
        ]
        for label, folder, side, step_counts, unfused in cases:
            if folder == sd15:
                _sd15_random(sd15, demo)
            raw = Path(tmp) / f"onnx-{side}"
            export(folder, raw, tolerance=1e-2, fuse=False)
            # copies, not links: onnx refuses hard-linked weight files
            fused = Path(shutil.copytree(raw, Path(tmp) / f"onnx-{side}-fused"))
            fuse_attention_file(fused / UNET_FILE)
            int8 = Path(shutil.copytree(fused, Path(tmp) / f"onnx-{side}-int8"))
            big = any(f.suffix == ".data" for f in int8.iterdir())
            quantize_int8(int8 / UNET_FILE, ops=("MatMul",), external=big)
            if not unfused:
                shutil.rmtree(raw)
            n = repeats if side <= 64 else 1  # the SD 1.5-size runs take minutes

            def diffusers(folder: Path = folder, side: int = side) -> Callable[[int], object]:
                ref = load_pipeline(folder)
                ref.set_progress_bar_config(disable=True)

                def run(steps: int) -> object:
                    with torch.inference_mode():
                        return ref(
                            PROMPT,
                            num_inference_steps=steps,
                            guidance_scale=7.5,
                            height=side,
                            width=side,
                            output_type="np",
                        )

                return run

            def genserve(built: Path, side: int = side) -> Callable[[int], object]:
                ours = ImagePipeline(built, settings, verify=False)

                def run(steps: int) -> object:
                    params = ImageParams(steps=steps, guidance=7.5, width=side, height=side)
                    return ours.generate([PROMPT], [""], [0], params)

                return run

            systems: dict[str, Callable[[], Callable[[int], object]]] = {
                "diffusers": diffusers,
                **({"as exported": functools.partial(genserve, raw)} if unfused else {}),
                "fused": functools.partial(genserve, fused),
                "int8": functools.partial(genserve, int8),
            }
            # In turns, one pipeline alive at a time: each turn loads a system, warms it
            # (once, at the fewest steps: the same shapes and kernels) and times each step
            # count, then drops it. Loaded sessions slowed whatever ran beside them (their
            # threads, their memory), and one stretch per system puts the drift of a
            # shared machine into the ratios; turns spread it over every system alike.
            rates: dict[int, dict[str, list[float]]] = {
                c: {name: [] for name in systems} for c in step_counts
            }  # images/s
            order = list(turns(list(systems), rounds))
            for name in tqdm(order, desc=f"bench imagegen {side}x{side}", unit="turn"):
                call = systems[name]()
                call(min(step_counts))
                for count in step_counts:
                    rates[count][name].append(1 / _seconds(functools.partial(call, count), n))
                del call
                gc.collect()
            for count in step_counts:
                measured = Turns(rates[count])
                rows.append(
                    {
                        "case": label,
                        "steps": count,
                        "seconds": {name: 1 / measured.rate(name) for name in systems},
                        "speedup": {name: measured.ratio(name, "diffusers") for name in systems},
                    }
                )
    return rows


def main(threads: int, seconds: float = 0.0, startup: bool = True) -> int:
    """``genserve bench imagegen``: each pipeline runs a fixed number of times (``seconds``
    and ``startup`` are unused, kept for the bench command's one signature)."""
    rows = bench(threads)
    print(
        f"\nStable Diffusion pipeline, DDIM, guidance 7.5, one image, {threads} threads: "
        "seconds per image (median of the rounds, systems in turns), and the speed-up over "
        "diffusers (higher is better: the median of the rounds' own ratios, lowest-highest "
        "round). genserve: "
        "UNet attention as torch.onnx wrote it, fused (what the export builds), and fused "
        "with int8 matrix products (--precision int8)"
    )
    # every system of any case, diffusers last; a case without one leaves its cells blank
    names = [n for n in dict.fromkeys(n for r in rows for n in r["seconds"]) if n != "diffusers"]
    names.append("diffusers")
    ours = names[:-1]
    print(
        "| case | steps | "
        + " | ".join(f"{n} s" for n in names)
        + " | "
        + " | ".join(f"{n} vs diffusers" for n in ours)
        + " |"
    )
    print("|---|---:" + "|---:" * (len(names) + len(ours)) + "|")
    for r in rows:
        times = " | ".join(f"{r['seconds'][n]:.3f}" if n in r["seconds"] else "" for n in names)
        ratios = " | ".join(
            "{:.2f}x ({:.2f}-{:.2f})".format(*r["speedup"][n]) if n in r["speedup"] else ""
            for n in ours
        )
        print(f"| {r['case']} | {r['steps']} | {times} | {ratios} |")
    return 0
