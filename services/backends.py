"""The gateway's view of the model services: URLs, health, and bounded calls.

Every call has a connect timeout and its route's timeout. A service that refused the
last connection (a call's or a health probe's) is answered with 503 at once until a probe
connects again; one that answers "not ready" (loading, draining) still gets the call and
answers it itself; one that does not answer in time, 504. A probe that merely times out (a busy
service) does not mark a service down, so load never turns into false 503s.

The client is aiohttp (a BentoML dependency): over kept-alive connections it costs about
a millisecond less per call than httpx on this machine, which is most of what the gateway
adds (``genserve bench gateway``). A session belongs to an event loop, so one is kept per
loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from genserve import kinds
from genserve.config import BackendSettings, GatewaySettings
from genserve.errors import BackendUnavailable, GatewayTimeout, NotFound
from genserve.kinds import DEFAULT_BASE_PORT, ModelKind
from genserve.metrics import BACKEND_UP, UPSTREAM_SECONDS
from services.wire import error_from_body

log = logging.getLogger("genserve.gateway")

PASSED_BACK = ("content-type", "retry-after", "x-genserve-seed", "x-genserve-digits")


@dataclass(frozen=True)
class Upstream:
    """A model service's answer, read in full."""

    status_code: int
    headers: CIMultiDictProxy[str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


@dataclass
class Backend:
    name: str
    url: str
    timeout_s: float
    ready: bool = False
    refused: bool = False  # the last probe or call could not connect

    def set_state(self, ready: bool, refused: bool) -> None:
        if ready != self.ready:
            log.info("%s service is %s (%s)", self.name, "ready" if ready else "down", self.url)
        self.ready, self.refused = ready, refused
        BACKEND_UP.labels(self.name).set(1 if ready else 0)


def backend_settings(kind: ModelKind) -> BackendSettings:
    """Where a kind's service is (``GENSERVE_GATEWAY_<KIND>_URL``; by default the port
    ``genserve serve`` gives it) and its timeout (``GENSERVE_GATEWAY_TIMEOUT_<KIND>_S``;
    by default the kind's own)."""
    default_url = f"http://127.0.0.1:{DEFAULT_BASE_PORT + kind.port_offset}"
    return BackendSettings.from_env(kind.name, default_url, kind.timeout_s)


def _in_genserve_shape(answer: Upstream) -> bool:
    """Whether an error answer is genserve's own ``{"error": {"code": ...}}`` body."""
    try:
        error = answer.json().get("error")
    except (ValueError, AttributeError):
        return False
    return isinstance(error, dict) and isinstance(error.get("code"), str)


class Backends:
    def __init__(self, settings: GatewaySettings) -> None:
        self.by_name: dict[str, Backend] = {}
        for kind in kinds.kinds():
            backend = backend_settings(kind)
            self.by_name[kind.name] = Backend(kind.name, backend.url, backend.timeout_s)
        self.connect_timeout_s = settings.connect_timeout_s
        self.interval_s = settings.health_interval_s
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    def get(self, name: str) -> Backend:
        backend = self.by_name.get(name)
        if backend is None:
            raise NotFound(
                f"no model named {name!r}; models: {sorted(self.by_name)}", field="model"
            )
        return backend

    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=512, limit_per_host=256)
            session = self._sessions[loop] = aiohttp.ClientSession(
                connector=connector, auto_decompress=False
            )
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()

    async def request(
        self,
        name: str,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Upstream:
        """One call to a model service; errors become 503 (down) or 504 (too slow)."""
        backend = self.get(name)
        if backend.refused:
            raise BackendUnavailable(f"{name} service is down")
        timeout = aiohttp.ClientTimeout(
            total=timeout_s or backend.timeout_s, sock_connect=self.connect_timeout_s
        )
        started = time.perf_counter()
        try:
            async with self.session().request(
                method, backend.url + path, data=content, headers=headers, timeout=timeout
            ) as r:
                answer = Upstream(r.status, r.headers, await r.read())
            UPSTREAM_SECONDS.labels(name).observe(time.perf_counter() - started)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            backend.set_state(ready=False, refused=True)
            raise BackendUnavailable(f"{name} service refused the connection: {exc}") from None
        except TimeoutError:
            raise GatewayTimeout(f"{name} service did not answer in time") from None
        except aiohttp.ClientError as exc:  # the connection broke mid-request
            raise BackendUnavailable(f"{name} service dropped the connection: {exc}") from None
        if answer.status_code >= 400 and not _in_genserve_shape(answer):
            # Not genserve's own answer (BentoML's 504 or 503 body, a proxy's page): the
            # caller gets genserve's shape for that status, not a stranger's body.
            raise error_from_body(answer)
        return answer

    async def probe(self, backend: Backend) -> None:
        timeout = aiohttp.ClientTimeout(
            total=max(1.0, self.interval_s), sock_connect=self.connect_timeout_s
        )
        try:
            async with self.session().get(backend.url + "/readyz", timeout=timeout) as r:
                ok = r.status == 200
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
            backend.set_state(ready=False, refused=True)
        except (TimeoutError, aiohttp.ClientError):
            pass  # busy, not down: keep the last verdict
        else:
            # Told "not ready" (loading, draining): requests still go through, and the
            # service answers them itself (503 not_ready with its Retry-After); only a
            # refused connection fails fast here, so a stale verdict never refuses work
            # the service could already do.
            backend.set_state(ready=ok, refused=False)

    async def watch(self) -> None:
        """Probe every service's /readyz, forever (a task on the gateway's loop)."""
        while True:
            await asyncio.gather(*(self.probe(b) for b in self.by_name.values()))
            await asyncio.sleep(self.interval_s)
