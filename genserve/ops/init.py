"""``genserve init``: prepare the shared volumes of a container deployment, once.

- models: the image carries the models built from the committed weights; each is copied
  onto the models volume when the volume lacks it, or replaced when an earlier image
  copied it there and this image's differs (an upgrade: a new default folder, a graph a
  newer library needs). What the image did not put there (pulled hub checkpoints, a
  user's own export, even under an image folder's name) is left alone; the volume's
  ``.seeded.json`` records what came from which image;
- secrets: when no keys file exists, two API keys are made: ``admin`` (every model) and
  ``prometheus`` (the metrics scope). The keys file holds only their hashes; the
  prometheus key is written for Prometheus to read, and the admin key is printed once, to
  the init container's log (``docker compose logs init``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from genserve.artifacts import MANIFEST_NAME as MANIFEST

SEEDED = ".seeded.json"  # on the volume: folder name -> digest of the image's manifest


def seed_models(seed: Path, models: Path) -> list[str]:
    """Copy the image's model folders that ``models`` lacks, and replace those an earlier
    image put there that this one changed; the names copied."""
    models.mkdir(parents=True, exist_ok=True)
    record = models / SEEDED
    seeded: dict[str, str] = json.loads(record.read_text()) if record.is_file() else {}
    copied = []
    for folder in sorted(p for p in seed.iterdir() if (p / MANIFEST).is_file()):
        digest = hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()
        target = models / folder.name
        if target.exists() and seeded.get(folder.name) in (None, digest):
            continue  # not the image's, or the image's unchanged
        # Copied beside it, then renamed: an init killed mid-copy leaves no half folder.
        partial = models / f".{folder.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(folder, partial)
        if target.exists():
            shutil.rmtree(target)
        partial.rename(target)
        seeded[folder.name] = digest
        copied.append(folder.name)
    if copied:
        record.write_text(json.dumps(seeded, indent=2, sort_keys=True))
    return copied


def make_keys(secrets: Path) -> str | None:
    """Create keys.json and metrics_key unless keys.json exists; the admin key, or None."""
    from genserve.keys import key_digest, new_key

    secrets.mkdir(parents=True, exist_ok=True)
    keys_file = secrets / "keys.json"
    if keys_file.exists():
        return None
    admin, prometheus = new_key(), new_key()
    entries = [
        {"name": "admin", "sha256": key_digest(admin), "scopes": ["*"]},
        {"name": "prometheus", "sha256": key_digest(prometheus), "scopes": ["metrics"]},
    ]
    metrics_key = secrets / "metrics_key"
    metrics_key.write_text(prometheus)
    metrics_key.chmod(0o644)  # Prometheus runs as another user; the volume is internal
    keys_file.write_text(json.dumps({"keys": entries}, indent=2))
    keys_file.chmod(0o644)
    return admin


def init(seed: Path, models: Path, secrets: Path | None) -> int:
    copied = seed_models(seed, models)
    print(f"models: copied {', '.join(copied)}" if copied else f"models: {models} already set")
    if secrets is None:
        return 0
    admin = make_keys(secrets)
    if admin is None:
        print(f"keys: {secrets / 'keys.json'} already exists")
    else:
        print(f"keys: made {secrets / 'keys.json'}; the admin API key (shown once): {admin}")
    return 0
