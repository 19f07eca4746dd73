"""Every training recipe runs end to end (a few steps) and writes a loadable folder.

The committed demo weights come from the full recipes; these runs only prove that the
code behind `genserve models train ...` still works, without paying for a real run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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


def test_recipe_values_are_set_from_the_command_line(tmp_path: Path, capsys) -> None:
    """``genserve models train KIND --set KEY=VALUE``: JSON values override the recipe (here
    a UNet of other widths), recorded in the manifest; an unknown key or a pair without
    ``=`` is refused, naming --set."""
    import json

    from genserve.cli import main

    args = ["models", "train", "imagegen", "--out", str(tmp_path), "--steps", "2"]
    small = ["vae_steps=2", "per_scene=1", "batch_size=8", "unet_channels=[32, 64]"]
    assert main([*args, *(f"--set={x}" for x in small)]) == 0
    unet = json.loads((tmp_path / "unet" / "config.json").read_text())
    assert unet["block_out_channels"] == [32, 64]
    recipe = load_manifest(tmp_path, kind="imagegen").recipe
    assert recipe["unet_channels"] == [32, 64] and recipe["unet_steps"] == 2
    for bad, said in (
        (["--set", "unet_width=3"], "'unet_width' is not in"),
        (
            ["--set", "vae_steps"],
            "KEY=VALUE",
        ),
    ):
        capsys.readouterr()
        assert main([*args, *bad]) == 2
        assert said in capsys.readouterr().err


class _Stop(Exception):
    pass


def _stopped_then_resumed(
    train: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, saves: int, **recipe: Any
) -> tuple[Path, Path]:
    """Train ``recipe`` straight into one folder; into another, stop the run (an
    exception, as a kill would) right after its ``saves``-th state save, then resume it."""
    from genserve.train import STATE_FILE, Checkpoints

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(straight, progress=False, checkpoint_every=2, **recipe)
    save = Checkpoints.save
    done: list[str] = []

    def save_then_stop(self: Checkpoints, phase: str, step: int) -> None:
        save(self, phase, step)
        done.append(phase)
        if len(done) == saves:
            raise _Stop

    monkeypatch.setattr(Checkpoints, "save", save_then_stop)
    with pytest.raises(_Stop):
        train(resumed, progress=False, checkpoint_every=2, **recipe)
    assert (resumed / STATE_FILE).is_file()
    train(resumed, progress=False, checkpoint_every=2, resume=True, **recipe)
    assert not (resumed / STATE_FILE).exists(), "a finished run leaves no state behind"
    return straight, resumed


def _same_weights(a: Path, b: Path) -> list[str]:
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*.safetensors"))
    assert files and files == sorted(str(p.relative_to(b)) for p in b.rglob("*.safetensors"))
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs"
    return files


def test_gan_resumed_run_ends_with_the_same_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genserve.gan.train import train

    a, b = _stopped_then_resumed(train, tmp_path, monkeypatch, 1, steps=5)
    _same_weights(a, b)
    assert load_manifest(b, kind="gan").recipe["steps"] == 5


def test_translation_resumed_in_its_second_phase_ends_with_the_same_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genserve.translation.train import train

    recipe = dict(steps=4, align_steps=4, corpus_pairs=2_000, vocab_size=600, eval_pairs=4)
    # saves: main at 2 and 4 steps, alignment at 2 and 4: stopped in the alignment
    a, b = _stopped_then_resumed(train, tmp_path, monkeypatch, 3, **recipe)
    assert "model.safetensors" in _same_weights(a, b)


@pytest.mark.parametrize("saves", [1, 3], ids=["in-autoencoder", "in-unet"])
def test_imagegen_resumed_run_ends_with_the_same_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, saves: int
) -> None:
    from genserve.imagegen.train import train

    recipe = dict(vae_steps=4, unet_steps=4, per_scene=1, batch_size=8)
    a, b = _stopped_then_resumed(train, tmp_path, monkeypatch, saves, **recipe)
    assert len(_same_weights(a, b)) == 3  # text encoder, autoencoder, UNet


def test_resume_refuses_another_recipe_and_a_missing_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genserve.errors import ConfigError
    from genserve.gan.train import train
    from genserve.train import Checkpoints

    with pytest.raises(ConfigError, match="nothing to resume") as missing:
        train(tmp_path, progress=False, steps=4, resume=True)
    assert missing.value.field == "resume"

    save = Checkpoints.save

    def save_then_stop(self: Checkpoints, phase: str, step: int) -> None:
        save(self, phase, step)
        raise _Stop

    monkeypatch.setattr(Checkpoints, "save", save_then_stop)
    with pytest.raises(_Stop):
        train(tmp_path, progress=False, steps=4, checkpoint_every=2)
    with pytest.raises(ConfigError, match=r"another recipe \(lr differ") as other:
        train(tmp_path, progress=False, steps=4, checkpoint_every=2, lr=1e-3, resume=True)
    assert other.value.field == "resume"
