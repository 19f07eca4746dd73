"""Drive a genserve gateway with the KServe Python SDK, as its users do: its v2 REST client
and its gRPC client, default options. Imports nothing from genserve; run it from the SDK's
own environment (make .venv-kserve/.installed):

    GENSERVE_API_KEY=gs_... .venv-kserve/bin/python tests/e2e/kserve_client.py \\
        http://127.0.0.1:3000 127.0.0.1:50051

On each transport it asks whether the server and the gan and translation models are ready,
samples digits from gan (SEED INT64 and DIGIT INT32, sent as binary tensors: the SDK's
default for set_data_from_numpy) and translates a text (TEXT BYTES, sent as JSON data or
gRPC contents), then prints what came back as one JSON document on stdout. The key goes in
the ``authorization: Bearer <key>`` header. Any error ends the run with a traceback and a
non-zero exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
from typing import Any

import numpy as np
from kserve import (
    InferenceGRPCClient,
    InferenceRESTClient,
    InferInput,
    InferRequest,
    InferResponse,
    RESTConfig,
)

MODELS = ("gan", "translation")


def gan_request(seeds: list[int], digits: list[int]) -> InferRequest:
    seed = InferInput("SEED", [len(seeds)], "INT64")
    seed.set_data_from_numpy(np.array(seeds, dtype=np.int64))
    digit = InferInput("DIGIT", [len(digits)], "INT32")
    digit.set_data_from_numpy(np.array(digits, dtype=np.int32))
    return InferRequest(model_name="gan", infer_inputs=[seed, digit])


def translation_request(texts: list[str]) -> InferRequest:
    text = InferInput("TEXT", [len(texts)], "BYTES", data=list(texts))
    return InferRequest(model_name="translation", infer_inputs=[text])


def output(response: InferResponse, name: str) -> np.ndarray:
    found = response.get_output_by_name(name)
    if found is None:
        raise SystemExit(f"no output {name!r} in {response}")
    return found.as_numpy()


def gan_result(response: InferResponse) -> dict[str, Any]:
    images = output(response, "IMAGE")
    return {
        "image_shape": list(images.shape),
        "image_dtype": str(images.dtype),
        "image_sha256": [hashlib.sha256(image.tobytes()).hexdigest() for image in images],
        "digits": output(response, "DIGIT").tolist(),
    }


def translation_result(response: InferResponse) -> dict[str, Any]:
    texts = output(response, "TRANSLATION")
    return {"translations": [t.decode() if isinstance(t, bytes) else t for t in texts.tolist()]}


async def over_rest(url: str, key: str, args: argparse.Namespace) -> dict[str, Any]:
    def headers() -> dict[str, str]:
        # A fresh dict each call: the SDK adds binary-tensor headers to the one it is given.
        return {"authorization": f"Bearer {key}"}

    async with InferenceRESTClient(RESTConfig(protocol="v2")) as client:
        ready = await client.is_server_ready(url, headers=headers())
        models = {m: await client.is_model_ready(url, m, headers=headers()) for m in MODELS}
        gan = await client.infer(url, gan_request(args.seeds, args.digits), "gan", headers())
        text = await client.infer(url, translation_request(args.texts), "translation", headers())
    return {
        "server_ready": ready,
        "models_ready": models,
        "gan": gan_result(gan),
        "translation": translation_result(text),
    }


async def over_grpc(address: str, key: str, args: argparse.Namespace) -> dict[str, Any]:
    metadata = [("authorization", f"Bearer {key}")]
    async with InferenceGRPCClient(address) as client:
        ready = await client.is_server_ready(headers=metadata)
        models = {m: await client.is_model_ready(m, headers=metadata) for m in MODELS}
        gan = await client.infer(gan_request(args.seeds, args.digits), headers=metadata)
        text = await client.infer(translation_request(args.texts), headers=metadata)
    return {
        "server_ready": ready,
        "models_ready": models,
        "gan": gan_result(gan),
        "translation": translation_result(text),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the gateway's HTTP base URL, e.g. http://127.0.0.1:3000")
    parser.add_argument("grpc", help="the gateway's gRPC address, host:port")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8])
    parser.add_argument("--digits", type=int, nargs="+", default=[3, 9])
    parser.add_argument("--texts", nargs="+", default=["The cat sleeps."])
    args = parser.parse_args()
    key = os.environ["GENSERVE_API_KEY"]  # not an argument: arguments show in `ps`
    result = {
        "rest": await over_rest(args.url, key, args),
        "grpc": await over_grpc(args.grpc, key, args),
    }
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
