"""The ``double`` kind's BentoML service."""

from __future__ import annotations

import bentoml

from services.base import ModelService
from services.fastpath import serve_fast
from services.wire import Limits, create_app
from tests.kinds.double.api import DoubleRequest, DoubleResponse
from tests.kinds.double.model import Doubler

limits = Limits()
app = create_app("genserve double", "Doubles a vector (a test kind).", limits)


@bentoml.service(name="double", workers=1, logging={"access": {"enabled": False}})
@bentoml.asgi_app(app, path="/v1")
class DoubleService(ModelService[Doubler]):
    kind_name = "double"
    limits = limits

    @app.post("/double", response_model=DoubleResponse)
    async def double(self, req: DoubleRequest) -> DoubleResponse:
        return DoubleResponse(values=list(await self.batcher.submit(req.values)))

    @app.get("/model")
    async def model_info(self) -> dict:
        return self.describe()


serve_fast(DoubleService, app, limits)
