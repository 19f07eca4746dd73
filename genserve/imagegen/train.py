"""``genserve models train imagegen``: the demo Stable Diffusion pipeline, from scratch.

A diffusers pipeline folder of exactly Stable Diffusion's architecture, small: a CLIP BPE
tokenizer whose every caption word is one token, a 2-layer CLIPTextModel, an
AutoencoderKL (32x32 RGB <-> 4x8x8 latents), a UNet2DConditionModel with
cross-attention, DDPM training schedule. Phase 1 trains the autoencoder (MSE + L1, on a
cosine learning-rate schedule); phase 2 trains UNet and text encoder together (10% empty
captions, for classifier-free guidance), with an exponential moving average of the UNet.
Fixed seeds, a progress bar, checkpoints.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from genserve.artifacts import write_manifest
from genserve.imagegen.shapes import dataset, split_scenes
from genserve.train import Checkpoints

DEFAULT_RECIPE: dict[str, Any] = {
    "seed": 0,
    "per_scene": 54,
    "vae_steps": 1500,
    "unet_steps": 10000,
    # the UNet's two blocks (64, 128: 4.3 M parameters, the committed weights); 128, 128
    # denoises more precisely per step (README, "How good the demo models are")
    "unet_channels": [64, 128],
    "batch_size": 64,
    "vae_lr": 1e-3,
    "vae_l1": 1.0,
    "lr": 5e-4,
    "warmup": 200,
    "uncond_prob": 0.1,
    "ema_decay": 0.999,
    "threads": 2,
    "max_tokens": 16,
}
SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}
DDIM_EXTRA = {"set_alpha_to_one": False}


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's byte -> printable character table (GPT-2's)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def build_tokenizer(out: Path, words: list[str], max_tokens: int) -> None:
    """vocab.json + merges.txt for CLIPTokenizer in which every word is a single token.

    Merges are learnt over the word list by one global rank (as CLIP applies them), most
    frequent pair first, until every word is one symbol.
    """
    byte_chars = list(_bytes_to_unicode().values())
    vocab: list[str] = byte_chars + [c + "</w>" for c in byte_chars]
    words_sym = {w: [*w[:-1], w[-1] + "</w>"] for w in sorted(set(words))}
    merges: list[tuple[str, str]] = []
    while any(len(s) > 1 for s in words_sym.values()):
        pairs: Counter[tuple[str, str]] = Counter()
        for s in words_sym.values():
            pairs.update(itertools.pairwise(s))
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        for w, s in words_sym.items():
            i, merged = 0, []
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    merged.append(s[i] + s[i + 1])
                    i += 2
                else:
                    merged.append(s[i])
                    i += 1
            words_sym[w] = merged
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    tok_dir = out / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    (tok_dir / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (tok_dir / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    )
    (tok_dir / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "CLIPTokenizer",
                "model_max_length": max_tokens,
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "do_lower_case": True,
            },
            indent=2,
        )
    )
    (tok_dir / "special_tokens_map.json").write_text(
        json.dumps(
            {
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
            }
        )
    )


def build_models(out: Path, recipe: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """tokenizer, text encoder, VAE and UNet of the demo pipeline (random weights)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(out / "tokenizer"))
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tok),
            hidden_size=128,
            intermediate_size=512,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=recipe["max_tokens"],
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            projection_dim=128,
        )
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        norm_num_groups=16,
        sample_size=32,
        mid_block_add_attention=False,
    )
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=tuple(recipe.get("unet_channels", (64, 128))),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=128,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    return tok, text, vae, unet


def train(
    out: Path,
    *,
    progress: bool = True,
    resume: bool = False,
    checkpoint_every: int = 500,
    **overrides: Any,
) -> dict[str, Any]:
    """Train into ``out`` (a diffusers pipeline folder plus genserve.json); ``resume``:
    continue the run that saved ``out/train-state.pt`` (``genserve.train``)."""
    import torch
    import torch.nn.functional as F
    from diffusers import DDIMScheduler, DDPMScheduler, StableDiffusionPipeline

    recipe = {**DEFAULT_RECIPE, **overrides}
    torch.manual_seed(recipe["seed"])
    torch.set_num_threads(recipe["threads"])
    gen = torch.Generator().manual_seed(recipe["seed"])
    out.mkdir(parents=True, exist_ok=True)

    train_scenes, heldout = split_scenes(recipe["seed"])
    images, captions = dataset(train_scenes, recipe["per_scene"], recipe["seed"])
    words = sorted({w for s in train_scenes + heldout for w in s.caption.split()})
    build_tokenizer(out, words, recipe["max_tokens"])
    tok, text, vae, unet = build_models(out, recipe)
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    ids_all = tok(
        captions,
        padding="max_length",
        max_length=recipe["max_tokens"],
        truncation=True,
        return_tensors="pt",
    ).input_ids
    empty_ids = tok(
        [""], padding="max_length", max_length=recipe["max_tokens"], return_tensors="pt"
    ).input_ids
    bs = recipe["batch_size"]
    vae_opt = torch.optim.AdamW(vae.parameters(), lr=recipe["vae_lr"])
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=recipe["lr"], weight_decay=0.01)
    ema = copy.deepcopy(unet).eval()
    parts = dict(vae=vae, vae_opt=vae_opt, unet=unet, text=text, opt=opt, ema=ema, gen=gen)
    checkpoints = Checkpoints(
        out, recipe, parts, ("vae", "unet"), every=checkpoint_every, resume=resume
    )

    # Phase 1: the autoencoder.
    bar = checkpoints.loop("vae", recipe["vae_steps"], progress=progress, desc="train imagegen vae")
    for step in bar:
        for g in vae_opt.param_groups:
            g["lr"] = recipe["vae_lr"] * 0.5 * (1 + math.cos(math.pi * step / recipe["vae_steps"]))
        idx = torch.randint(len(x_all), (bs,), generator=gen)
        x = x_all[idx]
        post = vae.encode(x).latent_dist
        # Decoding the posterior mean (a deterministic autoencoder with a whisper of KL)
        # reaches a sharp reconstruction in minutes; sampled latents take far longer.
        rec = vae.decode(post.mode()).sample
        kl = post.kl().mean()
        # L1 beside MSE sharpens the edges (MSE alone leaves a soft ring round a shape).
        loss = F.mse_loss(rec, x) + recipe["vae_l1"] * F.l1_loss(rec, x) + 1e-6 * kl
        vae_opt.zero_grad(set_to_none=True)
        loss.backward()
        vae_opt.step()
        if step % 20 == 0:
            bar.set_postfix(mse=f"{F.mse_loss(rec, x).item():.4f}")
        if checkpoints.due(step):
            checkpoints.save("vae", step)
    vae.eval()
    with torch.no_grad():
        latents = torch.cat(
            [vae.encode(x_all[i : i + 256]).latent_dist.mean for i in range(0, len(x_all), 256)]
        )
    scaling = float(1.0 / latents.std())
    vae.register_to_config(scaling_factor=scaling)
    latents = latents * scaling

    # Phase 2: UNet and text encoder, DDPM noise prediction.
    sched: Any = DDPMScheduler(**SCHEDULER)
    steps, warm = recipe["unet_steps"], recipe["warmup"]

    def save() -> None:
        # float16 copies keep the committed weights small; training stays in float32.
        pipe: Any = StableDiffusionPipeline(
            vae=copy.deepcopy(vae).half(),
            text_encoder=copy.deepcopy(text).half(),
            tokenizer=tok,
            unet=copy.deepcopy(ema).half(),
            scheduler=DDIMScheduler(**SCHEDULER, **DDIM_EXTRA),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.save_pretrained(str(out), safe_serialization=True)

    bar = checkpoints.loop("unet", steps, progress=progress, desc="train imagegen unet")
    for step in bar:
        lr = (
            recipe["lr"]
            * min(1.0, (step + 1) / warm)
            * 0.5
            * (1 + math.cos(math.pi * step / steps))
        )
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(len(latents), (bs,), generator=gen)
        lat = latents[idx]
        ids = ids_all[idx].clone()
        drop = torch.rand(bs, generator=gen) < recipe["uncond_prob"]
        ids[drop] = empty_ids[0]
        noise = torch.randn(lat.shape, generator=gen)
        t = torch.randint(0, sched.config.num_train_timesteps, (bs,), generator=gen)
        noisy = sched.add_noise(lat, noise, t)
        cond = text(ids)[0]
        pred = unet(noisy, t, encoder_hidden_states=cond).sample
        loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            d = min(recipe["ema_decay"], (1 + step) / (10 + step))
            for pe, p in zip(ema.parameters(), unet.parameters(), strict=True):
                pe.lerp_(p, 1 - d)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if checkpoints.due(step):
            save()
            checkpoints.save("unet", step)
    save()
    checkpoints.finish()
    seconds = checkpoints.seconds()
    text.eval()
    recipe.update(
        train_seconds=round(seconds, 1), torch=torch.__version__, vae_scaling_factor=scaling
    )
    files = sorted(
        str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "genserve.json"
    )
    write_manifest(
        out,
        kind="imagegen",
        name="demo-shapes",
        files=files,
        config={"heldout_scenes": len(heldout), "train_scenes": len(train_scenes)},
        source={"format": "diffusers-stable-diffusion", "dataset": "genserve.imagegen.shapes"},
        recipe={"command": "genserve models train imagegen", **recipe},
    )
    return {
        "seconds": seconds,
        "vae_scaling_factor": scaling,
        "images": len(x_all),
        "latent_mean": float(np.float32(latents.mean() / scaling)),
    }
