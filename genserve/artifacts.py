"""Model manifests (``genserve.json``): what a model folder holds, verified on load.

A model is a folder with a manifest naming its kind, every file with its sha256,
its tensor interface, where it came from and the recipe that rebuilds it. Loading
checks every file; one changed byte refuses to load. File names in a manifest and
model names given by users can never reach outside their folder.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genserve.errors import InvalidInput, ModelIntegrityError, NotFound

MANIFEST_NAME = "genserve.json"
FORMAT_VERSION = 1
ALLOWED_SUFFIXES = (".onnx", ".safetensors", ".json", ".model", ".spm", ".txt", ".data")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, numpy dtype name, shape (None = dynamic)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorSpec:
        return cls(str(d["name"]), str(d["dtype"]), tuple(d["shape"]))


@dataclass(frozen=True)
class Manifest:
    folder: Path
    kind: str
    name: str
    files: dict[str, str]  # file name -> sha256
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)

    def path(self, file_name: str) -> Path:
        if file_name not in self.files:
            raise ModelIntegrityError(
                f"{file_name!r} is not listed in {self.folder / MANIFEST_NAME}"
            )
        return self.folder / file_name

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "name": self.name,
            "files": {n: {"sha256": h} for n, h in sorted(self.files.items())},
            "io": {
                "inputs": [t.to_dict() for t in self.inputs],
                "outputs": [t.to_dict() for t in self.outputs],
            },
            "config": self.config,
            "source": self.source,
            "recipe": self.recipe,
        }


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_file_name(folder: Path, name: str) -> Path:
    """A manifest file name: a relative path of plain names (a diffusers pipeline has
    sub-folders), inside the folder, of an allowed type; never absolute, never "..",
    never pickle."""
    parts = name.split("/")
    if (
        not all(_NAME.match(p) for p in parts)
        or len(parts) > 3
        or not name.endswith(ALLOWED_SUFFIXES)
    ):
        raise ModelIntegrityError(
            f"manifest in {folder} lists {name!r}: only relative paths of plain names ending "
            f"in {', '.join(ALLOWED_SUFFIXES)} are allowed (no '..', no pickle)"
        )
    return folder / name


def write_manifest(
    folder: Path,
    *,
    kind: str,
    name: str,
    files: list[str],
    inputs: tuple[TensorSpec, ...] = (),
    outputs: tuple[TensorSpec, ...] = (),
    config: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
    recipe: dict[str, Any] | None = None,
) -> Manifest:
    """Hash ``files`` (names inside ``folder``) and write ``folder/genserve.json``."""
    hashes = {f: sha256_file(_check_file_name(folder, f)) for f in files}
    manifest = Manifest(
        folder, kind, name, hashes, inputs, outputs, config or {}, source or {}, recipe or {}
    )
    text = json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n"
    (folder / MANIFEST_NAME).write_text(text)
    return manifest


def load_manifest(folder: Path, *, kind: str | None = None, verify: bool = True) -> Manifest:
    """Read ``folder/genserve.json`` and (by default) check every file's sha256.

    Raises ModelIntegrityError naming the file on any mismatch, and NotFound when the
    folder or its manifest is missing.
    """
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise NotFound(f"no model manifest at {path}; build the model first (make models)")
    try:
        raw = json.loads(path.read_text())
        files = {str(n): str(e["sha256"]) for n, e in raw["files"].items()}
        io = raw.get("io", {})
        manifest = Manifest(
            folder=folder,
            kind=str(raw["kind"]),
            name=str(raw["name"]),
            files=files,
            inputs=tuple(TensorSpec.from_dict(t) for t in io.get("inputs", [])),
            outputs=tuple(TensorSpec.from_dict(t) for t in io.get("outputs", [])),
            config=dict(raw.get("config", {})),
            source=dict(raw.get("source", {})),
            recipe=dict(raw.get("recipe", {})),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelIntegrityError(f"malformed manifest {path}: {exc}") from exc
    if raw.get("format_version") != FORMAT_VERSION:
        raise ModelIntegrityError(f"{path}: unsupported format_version {raw.get('format_version')}")
    if kind is not None and manifest.kind != kind:
        raise ModelIntegrityError(f"{path} is a {manifest.kind!r} model, expected {kind!r}")
    for name, expected in files.items():
        file = _check_file_name(folder, name)
        if not verify:
            continue
        if not file.is_file():
            raise ModelIntegrityError(f"model file {file} listed in the manifest is missing")
        actual = sha256_file(file)
        if actual != expected:
            raise ModelIntegrityError(
                f"model file {file} does not match its manifest (sha256 {actual[:12]}..., "
                f"expected {expected[:12]}...); rebuild it or restore the original"
            )
    return manifest


def resolve_model_dir(root: Path, name: str, *, field: str = "model") -> Path:
    """The folder of model ``name`` under ``root``; a name can never leave ``root``."""
    if not _NAME.match(name) or name in {".", ".."}:
        raise InvalidInput(f"invalid model name {name!r}", field=field)
    root = root.resolve()
    folder = (root / name).resolve()
    if folder.parent != root:
        raise InvalidInput(f"invalid model name {name!r}", field=field)
    return folder
