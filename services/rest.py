"""The gateway's REST API under /v1, built from the model kinds' routes (genserve.kinds).

Each kind route is declared here with its schema, so the OpenAPI document shows it and
FastAPI serves it when CORS is on; otherwise the front door passes its POSTs straight
through (services/frontdoor.py). Either way the call goes to the kind's service at the
same path, with the request id, under the route's timeout.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from fastapi import FastAPI, Request, Response

from genserve import kinds
from genserve.errors import NotFound
from genserve.kinds import ModelKind, Route
from services.backends import PASSED_BACK
from services.frontdoor import state
from services.openapi import calls_a_service
from services.wire import REQUEST_ID_HEADER, request_id_var

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a path parameter (a job id): no dots, no slashes


async def proxy(
    request: Request, model: str, timeout_s: float | None = None, path: str | None = None
) -> Response:
    """The request, passed to ``model``'s service (at the same path, unless ``path``); its
    answer, as it is."""
    body = await request.body() if request.method in ("POST", "PUT") else None
    headers = {REQUEST_ID_HEADER: request_id_var.get()}
    if body is not None:
        headers["content-type"] = "application/json"
    upstream = await state.backends.request(
        model,
        request.method,
        path or request.url.path,
        content=body,
        headers=headers,
        timeout_s=timeout_s,
    )
    kept = {k: v for k, v in upstream.headers.items() if k.lower() in PASSED_BACK}
    return Response(upstream.content, upstream.status_code, kept)


def _endpoint(kind: ModelKind, route: Route) -> Any:
    async def endpoint(request: Request, **values: Any) -> Response:
        for name in route.params:
            if not _ID.fullmatch(str(values[name])):
                raise NotFound(f"no such {name.removesuffix('_id')}", field=name)
        return await proxy(request, kind.name, state.timeout(kind, route))

    params = [inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request)]
    params += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=str)
        for name in route.params
    ]
    if route.request is not None:
        params.append(
            inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=route.request)
        )
    endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    endpoint.__doc__ = route.summary
    return endpoint


def add_routes(app: FastAPI) -> None:
    """Every kind's routes, then the models' list and summaries."""
    for kind in kinds.kinds():
        for route in kind.routes:
            app.add_api_route(
                route.path,
                _endpoint(kind, route),
                methods=[route.method],
                response_model=route.response,
                status_code=route.status_code,
                tags=[kind.name],
                summary=route.summary.split(";")[0].rstrip("."),
                name=f"{kind.name} {route.method} {route.path}",
            )
    app.add_api_route("/v1/models", models, methods=["GET"], tags=["models"])
    app.add_api_route("/v1/models/{name}", model, methods=["GET"], tags=["models"])


async def models() -> dict[str, Any]:
    """The models behind the gateway and whether their services are ready."""
    return {
        "models": [
            {"name": b.name, "ready": b.ready, "url": f"/v1/models/{b.name}"}
            for b in state.backends.by_name.values()
        ]
    }


@calls_a_service
async def model(name: str, request: Request) -> Response:
    """A model's manifest summary and execution provider, from its service."""
    return await proxy(request, name, state.settings.timeout_jobs_s, "/v1/model")
