"""``genserve models export imagegen FOLDER``: a diffusers Stable Diffusion folder -> ONNX.

Three graphs: ``text_encoder.onnx`` (input_ids -> last_hidden_state), ``unet.onnx``
(sample, timestep, encoder_hidden_states -> noise prediction; the batch carries the
unconditional and conditional halves of classifier-free guidance together) and
``vae_decoder.onnx`` (latents -> image in [-1, 1]). The tokenizer is written as one
``tokenizer.json`` for the ``tokenizers`` library, and ``imagegen.json`` holds what the
runtime pipeline needs (scheduler config, VAE scaling, sizes). The UNet's attention is
fused into ONNX Runtime's MultiHeadAttention kernel (``optimize.fuse_attention``). The
export fails, leaving no ONNX files, unless ONNX Runtime matches PyTorch.

After the parity check, ``precision="int8"`` quantizes the UNet's matrix products
(attention projections, feed-forward layers) to int8 weights, its convolutions staying
float32 (ONNX Runtime's integer convolution is slower on the CPU than its float one);
``precision="fp16"`` (for GPUs) converts the UNet and the text encoder to float16 with
float32 inputs and outputs, the VAE staying float32. Their quality against float32 is
measured by tests/integration/test_imagegen_model.py (``-k precision``), not here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from genserve.artifacts import load_manifest, write_manifest
from genserve.config import RuntimeSettings
from genserve.errors import ExportError
from genserve.exporting import ParityCheck, convert_fp16, display_path, quantize_int8
from genserve.imagegen.pipeline import (
    SETTINGS_FILE,
    TEXT_FILE,
    TOKENIZER_FILE,
    UNET_FILE,
    VAE_FILE,
)
from genserve.limits import MAX_SIDE
from genserve.runtime import OnnxSession

OPSET = 18


def load_pipeline(folder: Path) -> Any:
    """The diffusers pipeline in float32 from safetensors only (never pickle)."""
    import torch
    from diffusers import StableDiffusionPipeline

    if not list(folder.glob("unet/*.safetensors")):
        raise ExportError(f"{folder} has no safetensors UNet; genserve loads no pickle weights")
    return StableDiffusionPipeline.from_pretrained(
        str(folder),
        torch_dtype=torch.float32,
        use_safetensors=True,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def export(
    folder: Path,
    out_dir: Path,
    *,
    tolerance: float = 1e-3,
    precision: str = "fp32",
    fuse: bool = True,
) -> dict[str, Any]:
    """Export the three graphs, check them, write a verified model folder (``fuse``:
    False leaves the UNet's attention as torch.onnx wrote it, for the benchmark's A/B)."""
    import torch

    from genserve.imagegen.modules import TextEncoder, UNet, VaeDecoder
    from genserve.imagegen.optimize import fuse_attention_file

    source = (
        load_manifest(folder, kind="imagegen") if (folder / "genserve.json").is_file() else None
    )
    pipe = load_pipeline(folder)
    text, unet, vae = (
        TextEncoder(pipe.text_encoder).eval(),
        UNet(pipe.unet).eval(),
        VaeDecoder(pipe.vae).eval(),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in out_dir.iterdir():
        f.unlink()
    max_tokens = int(pipe.tokenizer.model_max_length)
    latent_ch = int(pipe.unet.config.in_channels)
    scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    size = int(pipe.unet.config.sample_size)
    hidden = int(pipe.text_encoder.config.hidden_size)
    batch, h, w = torch.export.Dim("batch"), torch.export.Dim("h"), torch.export.Dim("w")
    # Protobuf holds at most 2 GB: big UNets keep their weights in a .data file beside.
    big = sum(p.numel() for p in pipe.unet.parameters()) * 4 > 1_500_000_000
    ids = torch.zeros(2, max_tokens, dtype=torch.long)
    sample = torch.randn(2, latent_ch, size, size)
    t = torch.tensor([500.0, 500.0])
    ctx = torch.randn(2, max_tokens, hidden)
    with torch.no_grad():
        torch.onnx.export(
            text,
            (ids,),
            str(out_dir / TEXT_FILE),
            input_names=["input_ids"],
            output_names=["last_hidden_state"],
            dynamic_shapes={"input_ids": {0: batch}},
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
        )
        torch.onnx.export(
            unet,
            (sample, t, ctx),
            str(out_dir / UNET_FILE),
            input_names=["sample", "timestep", "encoder_hidden_states"],
            output_names=["noise"],
            dynamic_shapes={
                "sample": {0: batch, 2: h, 3: w},
                "timestep": {0: batch},
                "encoder_hidden_states": {0: batch},
            },
            opset_version=OPSET,
            dynamo=True,
            external_data=big,
        )
        torch.onnx.export(
            vae,
            (sample,),
            str(out_dir / VAE_FILE),
            input_names=["latents"],
            output_names=["image"],
            dynamic_shapes={"latents": {0: batch, 2: h, 3: w}},
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
        )
    fused = fuse_attention_file(out_dir / UNET_FILE) if fuse else 0
    settings = RuntimeSettings(providers="CPUExecutionProvider")
    try:
        sessions = [
            OnnxSession(out_dir / f, settings, warmup_dims={"h": size, "w": size})
            for f in (TEXT_FILE, UNET_FILE, VAE_FILE)
        ]
        dims = (max_tokens, latent_ch, size, hidden)
        worst = _parity((text, unet, vae), sessions, dims, tolerance)
    except Exception:
        for f in out_dir.iterdir():
            f.unlink()
        raise
    quantization: dict[str, object] | None = None
    if precision == "int8":
        quantization = quantize_int8(out_dir / UNET_FILE, ops=("MatMul",), external=big)
    elif precision == "fp16":  # the VAE stays float32: its activations overflow float16
        quantization = convert_fp16(out_dir / UNET_FILE, external=big)
        convert_fp16(out_dir / TEXT_FILE)
    from transformers import CLIPTokenizerFast  # type: ignore[attr-defined]

    fast = CLIPTokenizerFast.from_pretrained(str(folder / "tokenizer"))
    fast.backend_tokenizer.save(str(out_dir / TOKENIZER_FILE))
    sched = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    settings_doc = {
        "scheduler": {k: v for k, v in sched.items() if not k.startswith("_")},
        "scaling_factor": float(pipe.vae.config.scaling_factor),
        "vae_scale_factor": scale,
        "latent_channels": latent_ch,
        "default_size": size * scale,
        # The largest side served: twice the trained size (beyond it a UNet's attention
        # over the latent grows as the fourth power of the side and the pictures fall
        # apart), never above the API's bound.
        "max_size": min(MAX_SIDE, 2 * size * scale),
        "max_tokens": max_tokens,
        "precision": precision,
        "pad_token_id": int(pipe.tokenizer.pad_token_id),
        "eos_token_id": int(pipe.tokenizer.eos_token_id),
    }
    (out_dir / SETTINGS_FILE).write_text(json.dumps(settings_doc, indent=2) + "\n")
    write_manifest(
        out_dir,
        kind="imagegen",
        name=source.name if source else folder.name,
        files=sorted(f.name for f in out_dir.iterdir() if f.name != "genserve.json"),
        config=settings_doc,
        source={
            "format": "diffusers-stable-diffusion",
            "folder": display_path(folder),
            "opset": OPSET,
            "torch": torch.__version__,
            "parity_max_abs": worst,
            "unet_attention_fused": fused,
            **({"quantization": quantization} if quantization else {}),
        },
        recipe=source.recipe if source else {},
    )
    return {
        "parity_max_abs": worst,
        "attention_fused": fused,
        "precision": precision,
        "folder": str(out_dir),
    }


def _parity(
    modules: tuple[Any, Any, Any],
    sessions: list[OnnxSession],
    dims: tuple[int, int, int, int],
    tolerance: float,
) -> float:
    """Each graph in ONNX Runtime against its torch module, on random inputs; ``dims``
    are (max_tokens, latent channels, latent size, text hidden size)."""
    import torch

    text, unet, vae = modules
    max_tokens, latent_ch, size, hidden = dims
    parity = ParityCheck(tolerance)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 40, size=(3, max_tokens)).astype(np.int64)
    sample = rng.standard_normal((3, latent_ch, size, size)).astype(np.float32)
    t = np.array([999.0, 500.0, 1.0], np.float32)
    ctx = rng.standard_normal((3, max_tokens, hidden)).astype(np.float32)
    with torch.no_grad():
        want_text = text(torch.from_numpy(ids)).numpy()
        want_noise = unet(
            torch.from_numpy(sample), torch.from_numpy(t), torch.from_numpy(ctx)
        ).numpy()
        want_image = vae(torch.from_numpy(sample)).numpy()
    text_s, unet_s, vae_s = sessions
    parity.compare(
        "text_encoder last_hidden_state",
        text_s.run({"input_ids": ids})["last_hidden_state"],
        want_text,
    )
    noise = unet_s.run({"sample": sample, "timestep": t, "encoder_hidden_states": ctx})["noise"]
    parity.compare("unet noise", noise, want_noise)
    parity.compare("vae_decoder image", vae_s.run({"latents": sample})["image"], want_image)
    return parity.check(on_failure="the ONNX files were removed")
