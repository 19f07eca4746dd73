"""A fourth model kind, added as its own folder (tests/kinds/double: contract, model and
service) plus one registry entry (GENSERVE_MODELS_EXTRA_KINDS), is built by the CLI,
started from the registry and served by the gateway over REST, OIP v2 HTTP and gRPC,
with its scope, without a change anywhere else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from genserve import kinds
from genserve.config import PROJECT_ROOT
from genserve.keys import key_digest, new_key
from genserve.ops.launcher import model_services
from tests.e2e.conftest import Server, free_port, gateway_env

pytestmark = pytest.mark.e2e

EXTRA = {"GENSERVE_MODELS_EXTRA_KINDS": "tests.kinds.double.api:KIND"}


@pytest.fixture(scope="module")
def registered() -> Iterator[None]:
    """The registry, read again with the extra kind (as every process started here does)."""
    old = os.environ.get("GENSERVE_MODELS_EXTRA_KINDS")
    os.environ.update(EXTRA)
    kinds.registry.cache_clear()
    yield
    if old is None:
        del os.environ["GENSERVE_MODELS_EXTRA_KINDS"]
    else:
        os.environ["GENSERVE_MODELS_EXTRA_KINDS"] = old
    kinds.registry.cache_clear()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, registered: None) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("double")
    models = tmp / "models"
    env = {**os.environ, **EXTRA, "GENSERVE_MODELS_DIR": str(models)}
    # The CLI knows the kind from the registry: `genserve models export double`.
    cli = [sys.executable, "-m", "genserve.cli", "models", "export", "double", str(tmp)]
    subprocess.run(cli, cwd=PROJECT_ROOT, env=env, check=True, capture_output=True)
    key = new_key()
    keys = tmp / "keys.json"
    entry = {"name": "doubler", "sha256": key_digest(key), "scopes": ["double"]}
    keys.write_text(json.dumps({"keys": [entry]}))
    service = Server(
        kinds.get("double").service,
        {**EXTRA, "GENSERVE_MODELS_DIR": str(models)},
        tmp / "double.log",
    )
    grpc_port = free_port()
    gw_env = gateway_env(
        {"double": service.url}, grpc_port, GENSERVE_GATEWAY_KEYS_FILE=str(keys), **EXTRA
    )
    gateway = Server("services.gateway:Gateway", gw_env, tmp / "gw.log")
    yield {"gateway": gateway, "grpc": f"127.0.0.1:{grpc_port}", "key": key, "tmp": tmp}
    gateway.stop()
    service.stop()


def test_the_registry_names_it_everywhere(registered: None) -> None:
    from genserve.keys import scopes

    assert "double" in kinds.names()
    assert "double" in scopes()
    assert [s.offset for s in model_services() if s.name == "double"] == [13]


def test_served_over_rest_with_its_scope(stack: dict) -> None:
    gw = stack["gateway"].url
    auth = {"authorization": f"Bearer {stack['key']}"}
    r = httpx.post(f"{gw}/v1/double", json={"values": [1.5, -2.0]}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == {"values": [3.0, -4.0]}
    bad = httpx.post(f"{gw}/v1/double", json={"values": []}, headers=auth)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "values"
    listed = httpx.get(f"{gw}/v1/models", headers=auth).json()["models"]
    assert {"name": "double", "ready": True, "url": "/v1/models/double"} in listed
    assert httpx.get(f"{gw}/v1/models/double", headers=auth).json()["kind"] == "double"
    # Its key is scoped to it alone: another kind's route is refused.
    other = httpx.post(f"{gw}/v1/samples", json={}, headers=auth)
    assert other.status_code == 403
    spec = httpx.get(f"{gw}/openapi.json", headers=auth).json()
    assert "/v1/double" in spec["paths"]


def test_served_over_oip_http_and_grpc(stack: dict) -> None:
    def headers() -> dict[str, str]:  # a fresh dict each call: tritonclient adds to it
        return {"authorization": f"Bearer {stack['key']}"}

    x = np.array([0.25, 4.0, -1.0], dtype=np.float32)
    http = triton_http.InferenceServerClient(stack["gateway"].url.removeprefix("http://"))
    assert http.is_model_ready("double", headers=headers())
    assert http.get_model_metadata("double", headers=headers())["inputs"][0]["name"] == "X"
    t = triton_http.InferInput("X", [3], "FP32")
    t.set_data_from_numpy(x)
    out = http.infer("double", [t], headers=headers()).as_numpy("Y")
    np.testing.assert_array_equal(out, 2 * x)
    grpc = triton_grpc.InferenceServerClient(stack["grpc"])
    g = triton_grpc.InferInput("X", [3], "FP32")
    g.set_data_from_numpy(x)
    out = grpc.infer("double", [g], headers=headers()).as_numpy("Y")
    np.testing.assert_array_equal(out, 2 * x)
