"""The KServe Python SDK against the real gateway, run as its users run it: from its own
environment (.venv-kserve, made by `make test`), its v2 REST client and its gRPC client with
default options (tests/e2e/kserve_client.py). What it gets back is checked against the
gateway's REST API."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from genserve.config import PROJECT_ROOT
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

PYTHON = PROJECT_ROOT / ".venv-kserve" / "bin" / "python"
CLIENT = PROJECT_ROOT / "tests" / "e2e" / "kserve_client.py"
SEEDS = [11, 12]
DIGITS = [4, 7]
TEXT = "The cat sleeps."


def run_client(gateway: Server, key: str) -> subprocess.CompletedProcess[str]:
    if not PYTHON.is_file():
        pytest.fail(f"{PYTHON} is missing: make .venv-kserve/.installed")
    command = [str(PYTHON), str(CLIENT), gateway.url, gateway.grpc]  # type: ignore[attr-defined]
    command += ["--seeds", *map(str, SEEDS), "--digits", *map(str, DIGITS), "--texts", TEXT]
    env = {**os.environ, "GENSERVE_API_KEY": key}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def sdk(gateway: Server, api_keys: dict[str, str]) -> dict[str, Any]:
    """What the SDK got from the gateway, by transport ("rest", "grpc")."""
    done = run_client(gateway, api_keys["full"])
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def rest_samples(gateway: Server, api_keys: dict[str, str]) -> list[dict[str, Any]]:
    """POST /v1/samples for each seed and digit: the images the SDK should have got."""
    headers = {"authorization": f"Bearer {api_keys['full']}"}
    answers = []
    for seed, digit in zip(SEEDS, DIGITS, strict=True):
        body = {"seed": seed, "n": 1, "digit": digit}
        r = httpx.post(f"{gateway.url}/v1/samples", json=body, headers=headers, timeout=60)
        assert r.status_code == 200, r.text
        answers.append(r.json())
    return answers


TRANSPORTS = pytest.mark.parametrize("transport", ["rest", "grpc"])


@TRANSPORTS
def test_server_and_models_are_ready(sdk: dict[str, Any], transport: str) -> None:
    assert sdk[transport]["server_ready"] is True
    assert sdk[transport]["models_ready"] == {"gan": True, "translation": True}


@TRANSPORTS
def test_gan_images_and_digits(
    sdk: dict[str, Any], rest_samples: list[dict[str, Any]], transport: str
) -> None:
    gan = sdk[transport]["gan"]
    height, width = rest_samples[0]["height"], rest_samples[0]["width"]
    assert [height, width] == [32, 32]
    assert gan["image_shape"] == [len(SEEDS), height, width, 3]
    assert gan["image_dtype"] == "uint8"
    assert gan["digits"] == DIGITS
    pngs = [base64.b64decode(s["images"][0]["png_base64"]) for s in rest_samples]
    pixels = [np.asarray(Image.open(io.BytesIO(png)).convert("RGB")) for png in pngs]
    assert gan["image_sha256"] == [hashlib.sha256(p.tobytes()).hexdigest() for p in pixels]


@TRANSPORTS
def test_translation_matches_the_rest_api(
    sdk: dict[str, Any], gateway: Server, api_keys: dict[str, str], transport: str
) -> None:
    r = httpx.post(
        f"{gateway.url}/v1/translate",
        json={"texts": [TEXT]},
        headers={"authorization": f"Bearer {api_keys['full']}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    expected = [t["text"] for t in r.json()["translations"]]
    assert expected and expected[0]
    assert sdk[transport]["translation"]["translations"] == expected


def test_a_wrong_key_fails_the_client(gateway: Server) -> None:
    done = run_client(gateway, "gs_not-a-key")
    assert done.returncode != 0
    assert "401" in done.stderr, done.stderr[-4000:]
