"""Start real BentoML services on loopback ports for the end-to-end tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from genserve import kinds
from genserve.kinds import ModelKind
from genserve.ops.launcher import free_port, spawn, stop, wait_ready
from tests.conftest import MODELS_DIR


class Server:
    """``bentoml serve`` on a loopback port, its output in ``log`` (genserve.ops.launcher)."""

    def __init__(
        self, target: str, env: dict[str, str], log: Path, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log_file = log.open("ab")
        env = {"GENSERVE_MODELS_DIR": str(MODELS_DIR), **env}
        self.proc = spawn(target, "127.0.0.1", self.port, env, log=self._log_file)
        try:
            self.ready_seconds = wait_ready(self.url, self.proc, timeout=90)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"{exc}: {self.log.read_text()[-3000:]}") from None

    def pids(self) -> list[int]:
        """The server's processes: the arbiter and its workers."""
        arbiter = psutil.Process(self.proc.pid)
        return [arbiter.pid, *(p.pid for p in arbiter.children(recursive=True))]

    def stop(self) -> None:
        stop(self.proc)
        self._log_file.close()


def _serve(factory: pytest.TempPathFactory, kind: ModelKind) -> Iterator[Server]:
    """A session's server, batching with a generous wait so concurrent tests share calls."""
    log = factory.mktemp("logs") / f"{kind.name}.log"
    server = Server(kind.service, {f"GENSERVE_{kind.env_name}_MAX_LATENCY_MS": "30"}, log)
    yield server
    server.stop()


def _server(kind: ModelKind) -> Callable[..., Iterator[Server]]:
    @pytest.fixture(scope="session", name=f"{kind.name}_server")
    def fixture(
        tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
    ) -> Iterator[Server]:
        request.getfixturevalue(f"{kind.name}_model_dir")
        yield from _serve(tmp_path_factory, kind)

    return fixture


for _kind in kinds.kinds():  # <kind>_server for every model kind
    globals()[f"{_kind.name}_server"] = _server(_kind)


@pytest.fixture(scope="session")
def api_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Keys by name, and their hashes in a keys file ("file" holds its path)."""
    from genserve.keys import key_digest, new_key

    entries = {
        "full": {"scopes": kinds.names()},
        "gan-only": {"scopes": ["gan"]},
        "ops": {"scopes": ["metrics"]},
        "slow": {"scopes": ["gan"], "rate_per_minute": 6, "burst": 2},
    }
    keys = {name: new_key() for name in entries}
    doc = {
        "keys": [
            {"name": name, "sha256": key_digest(keys[name]), **entry}
            for name, entry in entries.items()
        ]
    }
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    path.write_text(json.dumps(doc))
    return {**keys, "file": str(path)}


def gateway_env(urls: dict[str, str], grpc_port: int, **extra: str) -> dict[str, str]:
    """The gateway's environment: each model kind's service URL (by kind name)."""
    return {
        **{f"GENSERVE_GATEWAY_{k.upper()}_URL": url for k, url in urls.items()},
        "GENSERVE_GATEWAY_GRPC_PORT": str(grpc_port),
        "GENSERVE_GATEWAY_RATE_PER_MINUTE": "1000000",
        "GENSERVE_GATEWAY_BURST": "10000",
        **extra,
    }


def model_servers(request: pytest.FixtureRequest) -> dict[str, Server]:
    """Every model kind's session server, started if it is not yet."""
    return {k: request.getfixturevalue(f"{k}_server") for k in kinds.names()}


@pytest.fixture(scope="session")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    api_keys: dict[str, str],
    request: pytest.FixtureRequest,
) -> Iterator[Server]:
    """The gateway with authentication on, in front of the session's model services."""
    grpc_port = free_port()
    urls = {name: server.url for name, server in model_servers(request).items()}
    env = gateway_env(urls, grpc_port, GENSERVE_GATEWAY_KEYS_FILE=api_keys["file"])
    server = Server("services.gateway:Gateway", env, tmp_path_factory.mktemp("logs") / "gw.log")
    server.grpc = f"127.0.0.1:{grpc_port}"  # type: ignore[attr-defined]
    yield server
    server.stop()
