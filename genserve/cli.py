"""The ``genserve`` command: train, export, pull and verify models; run benchmarks."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from genserve import kinds
from genserve.config import PROJECT_ROOT, Settings
from genserve.errors import ConfigError, GenserveError
from genserve.exporting import PRECISIONS
from genserve.kinds import ModelKind


def _train(
    kind: ModelKind, out: Path, steps: int | None, resume: bool, settings: list[str] | None = None
) -> dict[str, Any]:
    train = kinds.entry(kind.train, "train", kind)
    overrides = _recipe_settings(train, settings or [])
    if steps:
        overrides[kind.steps_key] = steps
    if resume:  # only then: a kind's trainer may not know the option
        overrides["resume"] = True
    result: dict[str, Any] = train(out, **overrides)
    return result


def _recipe_settings(train: Any, pairs: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as recipe overrides: each key one of the trainer's
    ``DEFAULT_RECIPE``, each value JSON (``128``, ``[128, 128]``, ``true``) or else text."""
    known: dict[str, Any] = getattr(sys.modules[train.__module__], "DEFAULT_RECIPE", {})
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set takes KEY=VALUE, not {pair!r}", field="set")
        if key not in known:
            raise ConfigError(
                f"{key!r} is not in this kind's recipe ({', '.join(known)})", field="set"
            )
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _export(kind: ModelKind, weights: Path, out: Path, precision: str = "fp32") -> dict[str, Any]:
    if precision not in kind.precisions:
        raise ConfigError(
            f"{kind.name} exports in {', '.join(kind.precisions)}; not {precision}",
            field="precision",
        )
    export = kinds.entry(kind.export, "export", kind)
    extra = {} if precision == "fp32" else {"precision": precision}
    result: dict[str, Any] = export(weights, out, **extra)
    return result


def _models(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "train":
        out = Path(args.out or PROJECT_ROOT / "models" / args.kind)
        print(
            json.dumps(
                _train(kinds.get(args.kind), out, args.steps, args.resume, args.set), indent=2
            )
        )
    elif args.action == "export":
        weights = Path(args.folder or PROJECT_ROOT / "models" / args.kind)
        name = args.kind if args.precision == "fp32" else f"{args.kind}-{args.precision}"
        out = Path(args.out or settings.models.dir / name)
        kind = kinds.get(args.kind)
        print(json.dumps(_export(kind, weights, out, args.precision), indent=2))
    elif args.action == "pull":
        from genserve.hub import pull

        name = args.hub_id.replace("/", "--")
        folder = pull(
            args.kind, args.hub_id, PROJECT_ROOT / "build" / "pulled" / name, args.revision
        )
        export = _export(kinds.get(args.kind), folder, settings.models.dir / name)
        print(json.dumps(export, indent=2))
        print(f"serve it with GENSERVE_{args.kind.upper()}_MODEL={name}")
    elif args.action == "verify":
        from genserve.artifacts import load_manifest

        m = load_manifest(Path(args.folder))
        print(f"ok: {m.kind} model {m.name!r}, {len(m.files)} file(s) match {m.folder}")
    return 0


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    if args.kind == "gateway":
        from genserve.ops.gateway_bench import main as bench_gateway

        return bench_gateway(requests=args.requests, kind=args.example_kind)
    kind = kinds.get(args.kind)
    bench = kinds.entry(kind.bench, "bench", kind)
    code: int = bench(threads=args.threads, seconds=args.seconds, startup=not args.skip_startup)
    return code


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    """A new API key: the key once on stdout, the entry to add to the keys file after it."""
    from genserve.keys import key_digest, new_key, scopes

    wanted = [s.strip() for s in (args.scopes or ",".join(kinds.names())).split(",") if s.strip()]
    unknown = set(wanted) - scopes()
    if unknown:
        print(
            f"genserve: unknown scopes {sorted(unknown)}; use {sorted(scopes())}", file=sys.stderr
        )
        return 2
    key = new_key()
    entry: dict[str, object] = {"name": args.name, "sha256": key_digest(key), "scopes": wanted}
    if args.rate_per_minute is not None:
        entry["rate_per_minute"] = args.rate_per_minute
    print(f"key (shown once; give it to {args.name}): {key}")
    print("entry for the keys file (GENSERVE_GATEWAY_KEYS_FILE):")
    print(json.dumps(entry))
    return 0


def main(argv: list[str] | None = None) -> int:
    names = kinds.names()
    pullable = [k.name for k in kinds.kinds() if k.pull is not None]
    parser = argparse.ArgumentParser(prog="genserve", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    models = sub.add_parser("models", help="train, export, pull and verify models")
    msub = models.add_subparsers(dest="action", required=True)
    p = msub.add_parser("train", help="train a demo model from the project's own data")
    p.add_argument("kind", choices=names)
    p.add_argument("--out", help="weights folder (default models/<kind>)")
    p.add_argument("--steps", type=int, help="override the recipe's step count")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a recipe value (repeatable; VALUE as JSON), e.g. "
        "--set unet_channels=[128,128]; the recipe is recorded in the folder's genserve.json",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the stopped run whose state (train-state.pt, saved every few hundred "
        "steps) is in the output folder; same options, same weights as a run never stopped",
    )
    p = msub.add_parser("export", help="build the ONNX model folder from a weights folder")
    p.add_argument("kind", choices=names)
    p.add_argument("folder", nargs="?", help="weights folder (default models/<kind>)")
    p.add_argument(
        "--out", help="output folder (default $GENSERVE_MODELS_DIR/<kind>[-<precision>])"
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="int8: ONNX Runtime dynamic quantization of the checked float32 graphs; fp16: "
        "float16 graphs with float32 inputs and outputs, for GPUs (kinds that offer them); "
        "serve one with GENSERVE_<KIND>_MODEL=<kind>-<precision>",
    )
    p = msub.add_parser("pull", help="download a hub checkpoint (network), then export it")
    p.add_argument("kind", choices=pullable)
    p.add_argument("hub_id", help="e.g. Helsinki-NLP/opus-mt-en-fr or stabilityai/sd-turbo")
    p.add_argument("--revision")
    p = msub.add_parser("verify", help="check a model folder against its manifest")
    p.add_argument("folder")

    s = sub.add_parser("serve", help="start the gateway and every model service (make up)")
    s.add_argument("--host", default="127.0.0.1", help="address the gateway binds")
    s.add_argument(
        "--port-base", type=int, default=kinds.DEFAULT_BASE_PORT, help="gateway port; others follow"
    )
    s.add_argument(
        "--auth",
        choices=("on", "off"),
        default="off",
        help="require API keys (GENSERVE_GATEWAY_KEYS_FILE); off = local development",
    )

    s.add_argument(
        "--cpus",
        choices=("auto", "all"),
        default="auto",
        help="auto: each model service its share of the CPUs (affinity and ONNX Runtime "
        "threads); all: every service may use every CPU",
    )

    k = sub.add_parser("keys", help="API keys for the gateway")
    ksub = k.add_subparsers(dest="action", required=True)
    p = ksub.add_parser("new", help="make a key; prints it once and the hashed entry to store")
    p.add_argument("name", help="who holds it (this name appears in logs, the key never)")
    p.add_argument("--scopes", help="comma-separated (default: every model kind)")
    p.add_argument("--rate-per-minute", type=float, help="default: the gateway's")

    i = sub.add_parser("init", help="containers: seed the models volume, make keys (once)")
    i.add_argument("--seed", default="/opt/genserve/models", help="models built into the image")
    i.add_argument("--models", default="/models", help="the models volume")
    i.add_argument("--secrets", default="/secrets", help="the secrets volume")
    i.add_argument("--models-only", action="store_true", help="seed models, make no keys")

    b = sub.add_parser("bench", help="benchmarks, side by side in one run")
    b.add_argument("kind", choices=(*names, "gateway"))
    b.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    b.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    b.add_argument("--skip-startup", action="store_true", help="skip the start-to-ready timing")
    b.add_argument("--requests", type=int, default=400, help="gateway: requests per path")
    b.add_argument(
        "--example-kind", help="gateway: the kind whose example request is sent (default: first)"
    )

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness poll
    settings = Settings()
    try:
        if args.command == "serve":
            from genserve.ops.launcher import serve

            return serve(
                args.host, args.port_base, auth=args.auth == "on", budget=args.cpus == "auto"
            )
        if args.command == "init":
            from genserve.ops.init import init

            secrets = None if args.models_only else Path(args.secrets)
            return init(Path(args.seed), Path(args.models), secrets)
        return {"models": _models, "bench": _bench, "keys": _keys}[args.command](args, settings)
    except GenserveError as exc:
        print(f"genserve: error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
