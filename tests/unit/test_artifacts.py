from __future__ import annotations

import json
from pathlib import Path

import pytest

from genserve.artifacts import (
    MANIFEST_NAME,
    TensorSpec,
    load_manifest,
    resolve_model_dir,
    write_manifest,
)
from genserve.errors import InvalidInput, ModelIntegrityError, NotFound


def _model(tmp_path: Path) -> Path:
    (tmp_path / "weights.safetensors").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "vocab.json").write_text('{"a": 1}')
    write_manifest(
        tmp_path,
        kind="gan",
        name="t",
        files=["weights.safetensors", "vocab.json"],
        inputs=(TensorSpec("z", "float32", (None, 4)),),
        recipe={"seed": 0},
    )
    return tmp_path


def test_round_trip(tmp_path: Path) -> None:
    m = load_manifest(_model(tmp_path), kind="gan")
    assert m.name == "t" and set(m.files) == {"weights.safetensors", "vocab.json"}
    assert m.inputs == (TensorSpec("z", "float32", (None, 4)),)
    assert m.recipe == {"seed": 0}
    assert m.path("vocab.json") == tmp_path / "vocab.json"


def test_one_changed_byte_refuses_to_load(tmp_path: Path) -> None:
    folder = _model(tmp_path)
    data = bytearray((folder / "weights.safetensors").read_bytes())
    data[100] ^= 1
    (folder / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match=r"weights\.safetensors does not match"):
        load_manifest(folder)


def test_missing_file_and_missing_manifest(tmp_path: Path) -> None:
    folder = _model(tmp_path)
    (folder / "vocab.json").unlink()
    with pytest.raises(ModelIntegrityError, match="missing"):
        load_manifest(folder)
    with pytest.raises(NotFound):
        load_manifest(tmp_path / "nowhere")


def test_wrong_kind(tmp_path: Path) -> None:
    with pytest.raises(ModelIntegrityError, match="expected 'translation'"):
        load_manifest(_model(tmp_path), kind="translation")


@pytest.mark.parametrize(
    "name",
    [
        "../outside.onnx",
        "/etc/passwd.json",
        "a/../b.onnx",
        "./x.onnx",
        "a/b/c/d.onnx",
        "w.pkl",
        "unet/w.bin",
    ],
)
def test_manifest_names_cannot_escape_or_pickle(tmp_path: Path, name: str) -> None:
    folder = _model(tmp_path)
    raw = json.loads((folder / MANIFEST_NAME).read_text())
    raw["files"][name] = {"sha256": "0" * 64}
    (folder / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(ModelIntegrityError, match="only relative paths"):
        load_manifest(folder)


def test_sub_folders_are_allowed_and_verified(tmp_path: Path) -> None:
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text("{}")
    write_manifest(tmp_path, kind="imagegen", name="t", files=["unet/config.json"])
    assert load_manifest(tmp_path).path("unet/config.json").read_text() == "{}"
    (tmp_path / "unet" / "config.json").write_text("{ }")
    with pytest.raises(ModelIntegrityError, match="does not match"):
        load_manifest(tmp_path)


def test_malformed_manifest(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ModelIntegrityError, match="malformed"):
        load_manifest(tmp_path)


@pytest.mark.parametrize("name", ["..", "../etc", "a/b", "", ".hidden", "x" * 200])
def test_model_names_stay_inside_the_models_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        resolve_model_dir(tmp_path, name)
    assert info.value.field == "model"


def test_model_name_resolves(tmp_path: Path) -> None:
    assert resolve_model_dir(tmp_path, "gan") == (tmp_path / "gan").resolve()
