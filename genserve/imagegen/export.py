"""``genserve models export imagegen FOLDER``: a diffusers Stable Diffusion folder -> ONNX.

Three graphs: ``text_encoder.onnx`` (input_ids -> last_hidden_state), ``unet.onnx``
(sample, timestep, encoder_hidden_states -> noise prediction; the batch carries the
unconditional and conditional halves of classifier-free guidance together) and
``vae_decoder.onnx`` (latents -> image in [-1, 1]). The tokenizer is written as one
``tokenizer.json`` for the ``tokenizers`` library, and ``imagegen.json`` holds what the
runtime pipeline needs (scheduler config, VAE scaling, sizes). The export fails, leaving
no ONNX files, unless ONNX Runtime matches PyTorch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from genserve.artifacts import load_manifest, write_manifest
from genserve.config import PROJECT_ROOT, RuntimeSettings
from genserve.errors import ExportError

OPSET = 18
TEXT_FILE, UNET_FILE, VAE_FILE = "text_encoder.onnx", "unet.onnx", "vae_decoder.onnx"
TOKENIZER_FILE, SETTINGS_FILE = "tokenizer.json", "imagegen.json"


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


def _wrappers() -> tuple[type, type, type]:
    import torch
    from torch import nn

    class TextEncoder(nn.Module):
        def __init__(self, text: Any) -> None:
            super().__init__()
            self.text = text

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.text(input_ids)[0]

    class UNet(nn.Module):
        def __init__(self, unet: Any) -> None:
            super().__init__()
            self.unet = unet

        def forward(
            self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor
        ) -> torch.Tensor:
            return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states).sample

    class VaeDecoder(nn.Module):
        def __init__(self, vae: Any) -> None:
            super().__init__()
            self.vae = vae

        def forward(self, latents: torch.Tensor) -> torch.Tensor:
            return self.vae.decode(latents).sample

    return TextEncoder, UNet, VaeDecoder


def export(folder: Path, out_dir: Path, *, tolerance: float = 1e-3) -> dict[str, Any]:
    """Export the three graphs, check them, write a verified model folder."""
    import torch

    from genserve.runtime import OnnxSession

    source = (
        load_manifest(folder, kind="imagegen") if (folder / "genserve.json").is_file() else None
    )
    pipe = load_pipeline(folder)
    text_cls, unet_cls, vae_cls = _wrappers()
    text, unet, vae = (
        text_cls(pipe.text_encoder).eval(),
        unet_cls(pipe.unet).eval(),
        vae_cls(pipe.vae).eval(),
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
    settings = RuntimeSettings(providers="CPUExecutionProvider")
    try:
        sessions = [
            OnnxSession(out_dir / f, settings, warmup_dims={"h": size, "w": size})
            for f in (TEXT_FILE, UNET_FILE, VAE_FILE)
        ]
        worst = _parity(text, unet, vae, sessions, max_tokens, latent_ch, size, hidden)
        if not worst <= tolerance:
            raise ExportError(f"ONNX Runtime and PyTorch differ by {worst:.3g} > {tolerance:g}")
    except Exception:
        for f in out_dir.iterdir():
            f.unlink()
        raise
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
        "max_tokens": max_tokens,
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
            "folder": _display(folder),
            "opset": OPSET,
            "torch": torch.__version__,
            "parity_max_abs": worst,
        },
        recipe=source.recipe if source else {},
    )
    return {"parity_max_abs": worst, "folder": str(out_dir)}


def _display(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else path.name


def _parity(
    text: Any,
    unet: Any,
    vae: Any,
    sessions: list[Any],
    max_tokens: int,
    latent_ch: int,
    size: int,
    hidden: int,
) -> float:
    import torch

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 40, size=(3, max_tokens)).astype(np.int64)
    sample = rng.standard_normal((3, latent_ch, size, size)).astype(np.float32)
    t = np.array([999.0, 500.0, 1.0], np.float32)
    ctx = rng.standard_normal((3, max_tokens, hidden)).astype(np.float32)
    with torch.no_grad():
        want = [
            text(torch.from_numpy(ids)).numpy(),
            unet(torch.from_numpy(sample), torch.from_numpy(t), torch.from_numpy(ctx)).numpy(),
            vae(torch.from_numpy(sample)).numpy(),
        ]
    got = [
        sessions[0].run({"input_ids": ids})["last_hidden_state"],
        sessions[1].run({"sample": sample, "timestep": t, "encoder_hidden_states": ctx})["noise"],
        sessions[2].run({"latents": sample})["image"],
    ]
    return max(float(np.abs(a - b).max()) for a, b in zip(got, want, strict=True))
