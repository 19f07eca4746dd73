"""`genserve models pull`, with the hub replaced by a local folder (no network in tests)."""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

import huggingface_hub
import pytest

from genserve.artifacts import load_manifest
from genserve.errors import ModelIntegrityError
from genserve.hub import pull
from tests.conftest import WEIGHTS_DIR


def fake_hub(repo: Path, calls: list[dict]):
    def snapshot_download(repo_id, *, revision=None, local_dir, allow_patterns):
        calls.append({"repo_id": repo_id, "revision": revision, "patterns": allow_patterns})
        for f in repo.iterdir():
            if any(fnmatch.fnmatch(f.name, p) for p in allow_patterns):
                shutil.copy(f, Path(local_dir) / f.name)
        return local_dir

    return snapshot_download


def test_pull_fetches_only_safe_files_and_writes_a_manifest(tmp_path, monkeypatch) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(WEIGHTS_DIR / "translation", repo)
    (repo / "genserve.json").unlink()
    (repo / "pytorch_model.bin").write_bytes(b"pickle")
    calls: list[dict] = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_hub(repo, calls))
    out = pull("translation", "Helsinki-NLP/opus-mt-en-fr", tmp_path / "out")
    m = load_manifest(out, kind="translation")
    assert m.source == {"hub": "Helsinki-NLP/opus-mt-en-fr", "revision": "main"}
    assert "model.safetensors" in m.files and not (out / "pytorch_model.bin").exists()
    assert calls[0]["repo_id"] == "Helsinki-NLP/opus-mt-en-fr"


def test_pull_refuses_pickle_only_checkpoints(tmp_path, monkeypatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "config.json").write_text("{}")
    (repo / "pytorch_model.bin").write_bytes(b"pickle")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_hub(repo, []))
    with pytest.raises(ModelIntegrityError, match="no pickle"):
        pull("translation", "someone/pickled", tmp_path / "out")
