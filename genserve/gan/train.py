"""``genserve models train gan``: train the demo generator on scikit-learn's digits.

A class-conditional GAN whose discriminator judges real/fake with the class projected in
(Miyato & Koyama, 2018) and also classifies, its classification losses weighted by
``class_weight``. At 1 (an AC-GAN) the generator is rewarded for images the discriminator
labels with the asked-for digit, and that reward pulls each class towards its most
recognisable digit; at 0 every digit is as varied as the data but fewer samples read as
asked. The committed demo uses 0.03 with the projection. The recipe's other ways to push
back, off in it:

- ``mode_seeking`` (Mao et al., MSGAN, 2019): for two latents of one class the
  generator is rewarded for images as far apart as the latents;
- ``minibatch_std`` (Karras et al., 2018): the discriminator sees the spread of each
  group of four images, drawn from one class, so a class whose samples collapse is told
  apart from the data.

docs/architecture.md ("The GAN's variety") has what each gave. The exported weights are
an exponential moving average of the generator's. Fixed seed, fixed thread count.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from genserve.artifacts import write_manifest
from genserve.gan.digits import DigitClassifier, digit_images
from genserve.train import Checkpoints

WEIGHTS_FILE = "generator.safetensors"
DEFAULT_RECIPE: dict[str, Any] = {
    "seed": 0,
    "steps": 6000,
    "batch_size": 64,
    "lr": 2e-4,
    "betas": [0.5, 0.999],
    "ema_decay": 0.995,
    "mode_seeking": 0.0,
    "minibatch_std": False,
    "class_weight": 0.03,
    "projection": True,
    "threads": 1,
    "data": "sklearn.datasets.load_digits, bilinear 8x8 -> 32x32, [-1, 1]",
}


def train(
    out: Path,
    *,
    progress: bool = True,
    resume: bool = False,
    checkpoint_every: int = 500,
    **overrides: Any,
) -> dict[str, Any]:
    """Train, checkpointing the EMA generator into ``out`` as it goes; ``resume``: continue
    the run that saved ``out/train-state.pt`` (``genserve.train``). Returns a summary."""
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file

    from genserve.gan.modules import Discriminator, GanConfig, Generator

    recipe = {**DEFAULT_RECIPE, **overrides}
    cfg = GanConfig()
    torch.manual_seed(recipe["seed"])
    torch.set_num_threads(recipe["threads"])
    gen = torch.Generator().manual_seed(recipe["seed"])

    images, labels = digit_images(cfg.image_size)
    x_all = torch.from_numpy(images * 2.0 - 1.0)[:, None]
    y_all = torch.from_numpy(labels)
    g = Generator(cfg)
    d = Discriminator(cfg, minibatch_std=recipe["minibatch_std"], projection=recipe["projection"])
    g_ema = copy.deepcopy(g).eval()
    opt_g = torch.optim.Adam(g.parameters(), lr=recipe["lr"], betas=tuple(recipe["betas"]))
    opt_d = torch.optim.Adam(d.parameters(), lr=recipe["lr"], betas=tuple(recipe["betas"]))
    bce = F.binary_cross_entropy_with_logits
    out.mkdir(parents=True, exist_ok=True)

    def onehot(y: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y, cfg.num_classes).float()

    def checkpoint() -> None:
        state = {k: v.detach().contiguous() for k, v in g_ema.state_dict().items()}
        save_file(state, str(out / WEIGHTS_FILE), metadata={"format": "pt"})

    by_class = [torch.nonzero(y_all == c).squeeze(1) for c in range(cfg.num_classes)]

    def draw(n: int) -> torch.Tensor:
        """Indices of ``n`` real digits. With the minibatch-std feature, rows i, i + n/4,
        i + n/2 and i + 3n/4 (the discriminator's groups) are digits of one class, and the
        fakes are asked for the same classes: the spread it sees is within a class, so a
        class whose samples collapse is told apart from the data."""
        if not recipe["minibatch_std"]:
            return torch.randint(len(x_all), (n,), generator=gen)
        classes = torch.randint(cfg.num_classes, (n // 4,), generator=gen).tolist()
        picks = [by_class[c][torch.randint(len(by_class[c]), (4,), generator=gen)] for c in classes]
        return torch.stack(picks, dim=1).reshape(-1)  # (4, n/4) flattened: stride n/4

    bs = recipe["batch_size"]
    parts = dict(g=g, d=d, g_ema=g_ema, opt_g=opt_g, opt_d=opt_d, gen=gen)
    checkpoints = Checkpoints(out, recipe, parts, ("gan",), every=checkpoint_every, resume=resume)
    bar = checkpoints.loop("gan", recipe["steps"], progress=progress, desc="train gan", unit="step")
    for step in bar:
        idx = draw(bs)
        real, y_real = x_all[idx], y_all[idx]
        # A random shift of up to 2 pixels keeps the discriminator from memorising 1,797 images.
        dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
        real = torch.roll(real, shifts=(dy, dx), dims=(2, 3))
        z = torch.randn(bs, cfg.z_dim, generator=gen)
        y_fake = (
            y_real
            if recipe["minibatch_std"]
            else torch.randint(cfg.num_classes, (bs,), generator=gen)
        )
        fake = g(z, onehot(y_fake))

        adv_r, cls_r = d(real, y_real)
        adv_f, cls_f = d(fake.detach(), y_fake)
        loss_d = (
            bce(adv_r, torch.full_like(adv_r, 0.9))
            + bce(adv_f, torch.zeros_like(adv_f))
            + recipe["class_weight"]
            * (F.cross_entropy(cls_r, y_real) + F.cross_entropy(cls_f, y_fake))
        )
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        adv_f, cls_f = d(fake, y_fake)
        loss_g = bce(adv_f, torch.ones_like(adv_f)) + recipe["class_weight"] * F.cross_entropy(
            cls_f, y_fake
        )
        if recipe["mode_seeking"]:
            z2 = torch.randn(bs, cfg.z_dim, generator=gen)
            fake2 = g(z2, onehot(y_fake))
            apart = (fake - fake2).abs().mean(dim=(1, 2, 3)) / (z - z2).abs().mean(dim=1)
            loss_g = loss_g + recipe["mode_seeking"] / (apart.mean() + 1e-5)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

        with torch.no_grad():
            decay = min(recipe["ema_decay"], (1 + step) / (10 + step))
            for pe, p in zip(g_ema.parameters(), g.parameters(), strict=True):
                pe.lerp_(p, 1.0 - decay)
            for be, b in zip(g_ema.buffers(), g.buffers(), strict=True):
                be.copy_(b)
        if step % 50 == 0:
            bar.set_postfix(loss_d=f"{loss_d.item():.3f}", loss_g=f"{loss_g.item():.3f}")
        if checkpoints.due(step):
            checkpoint()
            checkpoints.save("gan", step)
    checkpoint()
    checkpoints.finish()
    seconds = checkpoints.seconds()

    accuracy = class_accuracy(g_ema, cfg, n=1000, seed=1)
    recipe["train_seconds"] = round(seconds, 1)
    recipe["torch"] = torch.__version__
    write_manifest(
        out,
        kind="gan",
        name="digits-dcgan",
        files=[WEIGHTS_FILE],
        config=cfg.to_dict(),
        source={"format": "safetensors", "dataset": "sklearn digits (1,797 images)"},
        recipe={"command": "genserve models train gan", **recipe},
    )
    return {"seconds": seconds, "class_accuracy": accuracy}


def class_accuracy(g: Any, cfg: Any, *, n: int, seed: int) -> float:
    """Share of ``n`` class-conditional samples an independent SVC labels as asked."""
    import torch
    import torch.nn.functional as F

    clf = DigitClassifier(cfg.image_size).fit()
    rng = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % cfg.num_classes
    z = torch.randn(n, cfg.z_dim, generator=rng)
    with torch.no_grad():
        imgs = g.eval()(z, F.one_hot(y, cfg.num_classes).float())[:, 0].numpy()
    pred = clf.predict(np.clip((imgs + 1.0) / 2.0, 0.0, 1.0))
    return float((pred == y.numpy()).mean())
