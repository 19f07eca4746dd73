"""Start real BentoML services on loopback ports for the end-to-end tests."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from genserve.launcher import spawn, stop, wait_ready
from tests.conftest import MODELS_DIR


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``bentoml serve`` on a loopback port, its output in ``log`` (genserve.launcher)."""

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


def _serve(factory: pytest.TempPathFactory, name: str, target: str) -> Iterator[Server]:
    """A session's server, batching with a generous wait so concurrent tests share calls."""
    log = factory.mktemp("logs") / f"{name}.log"
    server = Server(target, {f"GENSERVE_{name.upper()}_MAX_LATENCY_MS": "30"}, log)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gan_server(tmp_path_factory: pytest.TempPathFactory, gan_model_dir: Path) -> Iterator[Server]:
    yield from _serve(tmp_path_factory, "gan", "services.gan:GanService")


@pytest.fixture(scope="session")
def translation_server(
    tmp_path_factory: pytest.TempPathFactory, translation_model_dir: Path
) -> Iterator[Server]:
    yield from _serve(tmp_path_factory, "translation", "services.translation:TranslationService")


@pytest.fixture(scope="session")
def imagegen_server(
    tmp_path_factory: pytest.TempPathFactory, imagegen_model_dir: Path
) -> Iterator[Server]:
    yield from _serve(tmp_path_factory, "imagegen", "services.imagegen:ImagegenService")


@pytest.fixture(scope="session")
def api_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Keys by name, and their hashes in a keys file ("file" holds its path)."""
    from services.security import key_digest, new_key

    entries = {
        "full": {"scopes": ["translation", "imagegen", "gan"]},
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


def gateway_env(
    gan: str, translation: str, imagegen: str, grpc_port: int, **extra: str
) -> dict[str, str]:
    return {
        "GENSERVE_GATEWAY_GAN_URL": gan,
        "GENSERVE_GATEWAY_TRANSLATION_URL": translation,
        "GENSERVE_GATEWAY_IMAGEGEN_URL": imagegen,
        "GENSERVE_GATEWAY_GRPC_PORT": str(grpc_port),
        "GENSERVE_GATEWAY_RATE_PER_MINUTE": "1000000",
        "GENSERVE_GATEWAY_BURST": "10000",
        **extra,
    }


@pytest.fixture(scope="session")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    api_keys: dict[str, str],
    gan_server: Server,
    translation_server: Server,
    imagegen_server: Server,
) -> Iterator[Server]:
    """The gateway with authentication on, in front of the session's model services."""
    grpc_port = free_port()
    env = gateway_env(
        gan_server.url,
        translation_server.url,
        imagegen_server.url,
        grpc_port,
        GENSERVE_GATEWAY_KEYS_FILE=api_keys["file"],
    )
    server = Server("services.gateway:Gateway", env, tmp_path_factory.mktemp("logs") / "gw.log")
    server.grpc = f"127.0.0.1:{grpc_port}"  # type: ignore[attr-defined]
    yield server
    server.stop()
