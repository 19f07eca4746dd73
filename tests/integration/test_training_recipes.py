"""Every training recipe runs end to end (a few steps) and writes a loadable folder.

The committed demo weights come from the full recipes; these runs only prove that the
code behind `genserve models train ...` still works, without paying for a real run.
"""

from __future__ import annotations

from pathlib import Path

from genserve.artifacts import load_manifest


def test_gan_recipe(tmp_path: Path) -> None:
    from genserve.gan.train import train

    summary = train(tmp_path, progress=False, steps=3)
    assert 0.0 <= summary["class_accuracy"] <= 1.0
    assert load_manifest(tmp_path, kind="gan").recipe["steps"] == 3


def test_gan_recipe_with_every_variety_option(tmp_path: Path) -> None:
    from genserve.gan.train import train

    options = {"minibatch_std": True, "projection": True, "class_weight": 0.0}
    train(tmp_path, progress=False, steps=3, mode_seeking=0.05, **options)
    recipe = load_manifest(tmp_path, kind="gan").recipe
    assert {k: recipe[k] for k in options} == options and recipe["mode_seeking"] == 0.05


def test_translation_recipe(tmp_path: Path) -> None:
    from genserve.translation.train import train

    summary = train(
        tmp_path,
        progress=False,
        steps=3,
        align_steps=2,
        corpus_pairs=2_000,
        vocab_size=600,
        eval_pairs=4,
    )
    m = load_manifest(tmp_path, kind="translation")
    assert m.recipe["align_steps"] == 2 and "heldout_bleu_greedy" in summary
    assert (tmp_path / "generation_config.json").is_file()


def test_imagegen_recipe(tmp_path: Path) -> None:
    from genserve.imagegen.train import train

    summary = train(tmp_path, progress=False, vae_steps=2, unet_steps=2, per_scene=1, batch_size=8)
    m = load_manifest(tmp_path, kind="imagegen")
    assert "unet/diffusion_pytorch_model.safetensors" in m.files
    assert summary["vae_scaling_factor"] > 0
