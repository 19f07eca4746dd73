"""`genserve init`: the models volume is seeded once, keys are made once."""

from __future__ import annotations

import json

from genserve.ops.init import init, make_keys, seed_models
from services.security import KeyStore


def model(folder, name: str, manifest: str = "{}") -> None:
    (folder / name).mkdir(parents=True, exist_ok=True)
    (folder / name / "genserve.json").write_text(manifest)


def test_the_images_models_are_seeded_and_upgraded_but_others_left_alone(tmp_path) -> None:
    seed, volume = tmp_path / "seed", tmp_path / "models"
    model(seed, "gan")
    model(seed, "translation")
    (seed / "not-a-model").mkdir()
    assert seed_models(seed, volume) == ["gan", "translation"]
    assert (volume / "gan" / "genserve.json").is_file() and not (volume / "not-a-model").exists()
    assert seed_models(seed, volume) == []  # nothing new: nothing copied
    # The user's own folders, one under a name a later image also brings, stay theirs.
    model(volume, "opus-mt", '{"name": "pulled"}')
    model(volume, "imagegen", '{"name": "mine"}')
    # A later image: a new folder, a changed one, one the user also has.
    model(seed, "translation-int8")
    model(seed, "gan", '{"name": "gan v2"}')
    model(seed, "imagegen", '{"name": "image v2"}')
    assert seed_models(seed, volume) == ["gan", "translation-int8"]
    assert (volume / "gan" / "genserve.json").read_text() == '{"name": "gan v2"}'
    assert (volume / "imagegen" / "genserve.json").read_text() == '{"name": "mine"}'
    assert (volume / "opus-mt" / "genserve.json").read_text() == '{"name": "pulled"}'
    assert seed_models(seed, volume) == []
    assert sorted(p.name for p in volume.iterdir()) == [
        ".seeded.json",
        "gan",
        "imagegen",
        "opus-mt",
        "translation",
        "translation-int8",
    ]  # no partial copies left


def test_keys_are_made_once_and_only_hashes_are_stored(tmp_path) -> None:
    secrets = tmp_path / "secrets"
    admin = make_keys(secrets)
    assert admin and admin not in (secrets / "keys.json").read_text()
    store = KeyStore()
    store.add_json((secrets / "keys.json").read_text(), "keys.json")
    assert store.authenticate(f"Bearer {admin}").scopes == {"*"}
    metrics = (secrets / "metrics_key").read_text()
    assert store.authenticate(f"Bearer {metrics}").scopes == {"metrics"}
    before = json.loads((secrets / "keys.json").read_text())
    assert make_keys(secrets) is None
    assert json.loads((secrets / "keys.json").read_text()) == before


def test_init_prints_the_admin_key_once(tmp_path, capsys) -> None:
    model(tmp_path / "seed", "gan")
    assert init(tmp_path / "seed", tmp_path / "models", tmp_path / "secrets") == 0
    first = capsys.readouterr().out
    assert "copied gan" in first and "admin API key (shown once): gs_" in first
    init(tmp_path / "seed", tmp_path / "models", tmp_path / "secrets")
    second = capsys.readouterr().out
    assert "already" in second and "gs_" not in second
