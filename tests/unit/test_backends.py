"""The gateway's calls to a model service: answers that are not genserve's own error
shape become genserve's error for their status, not a stranger's body."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from genserve import kinds
from genserve.config import GatewaySettings
from genserve.errors import GatewayTimeout, NotFound, Overloaded
from services.backends import Backends


async def _serve(status: int, body: bytes, ctype: str) -> tuple[web.AppRunner, str]:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type=ctype)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("status", "body", "ctype", "expected"),
    [
        # BentoML's own timeout body, and a plain-text 404 of its router
        (
            504,
            b'{"error":"Not able to process the request in 30 seconds"}',
            "application/json",
            GatewayTimeout,
        ),
        (404, b"Not Found", "text/plain", NotFound),
    ],
)
def test_a_strangers_error_body_becomes_genserves(
    monkeypatch, status, body, ctype, expected
) -> None:
    name = next(iter(kinds.names()))

    async def main() -> None:
        runner, url = await _serve(status, body, ctype)
        monkeypatch.setenv(f"GENSERVE_GATEWAY_{name.upper()}_URL", url)
        backends = Backends(GatewaySettings(auth=False))
        try:
            with pytest.raises(expected):
                await backends.request(name, "POST", "/v1/x", content=b"{}")
        finally:
            await backends.close()
            await runner.cleanup()

    asyncio.run(main())


def test_genserves_own_error_body_is_passed_on_as_it_is(monkeypatch) -> None:
    name = next(iter(kinds.names()))
    body = Overloaded("full").to_dict("rid")

    async def main() -> None:
        runner, url = await _serve(503, json.dumps(body).encode(), "application/json")
        monkeypatch.setenv(f"GENSERVE_GATEWAY_{name.upper()}_URL", url)
        backends = Backends(GatewaySettings(auth=False))
        try:
            answer = await backends.request(name, "POST", "/v1/x", content=b"{}")
            assert answer.status_code == 503 and answer.json() == body
        finally:
            await backends.close()
            await runner.cleanup()

    asyncio.run(main())
