"""The ``genserve`` command: train, export, pull and verify models; run benchmarks."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from genserve.config import PROJECT_ROOT, Settings
from genserve.errors import GenserveError

KINDS = ("gan", "translation", "imagegen")


def _train(kind: str, out: Path, steps: int | None) -> dict[str, Any]:
    overrides: dict[str, Any] = {"steps": steps} if steps else {}
    if kind == "gan":
        from genserve.gan.train import train as train_gan

        return train_gan(out, **overrides)
    if kind == "imagegen":
        from genserve.imagegen.train import train as train_imagegen

        overrides = {"unet_steps": steps} if steps else {}
        return train_imagegen(out, **overrides)
    from genserve.translation.train import train as train_translation

    return train_translation(out, **overrides)


def _export(kind: str, weights: Path, out: Path) -> dict[str, Any]:
    if kind == "gan":
        from genserve.gan.export import export as export_gan

        return export_gan(weights, out)
    if kind == "imagegen":
        from genserve.imagegen.export import export as export_imagegen

        return export_imagegen(weights, out)
    from genserve.translation.export import export as export_translation

    return export_translation(weights, out)


def _models(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "train":
        out = Path(args.out or PROJECT_ROOT / "models" / args.kind)
        print(json.dumps(_train(args.kind, out, args.steps), indent=2))
    elif args.action == "export":
        weights = Path(args.folder or PROJECT_ROOT / "models" / args.kind)
        out = Path(args.out or settings.models.dir / args.kind)
        print(json.dumps(_export(args.kind, weights, out), indent=2))
    elif args.action == "pull":
        from genserve.hub import pull

        name = args.hub_id.replace("/", "--")
        folder = pull(
            args.kind, args.hub_id, PROJECT_ROOT / "build" / "pulled" / name, args.revision
        )
        print(json.dumps(_export(args.kind, folder, settings.models.dir / name), indent=2))
        print(f"serve it with GENSERVE_{args.kind.upper()}_MODEL={name}")
    elif args.action == "verify":
        from genserve.artifacts import load_manifest

        m = load_manifest(Path(args.folder))
        print(f"ok: {m.kind} model {m.name!r}, {len(m.files)} file(s) match {m.folder}")
    return 0


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    if args.kind == "gateway":
        from genserve.gateway_bench import main as bench_gateway

        return bench_gateway(requests=args.requests)
    if args.kind == "translation":
        from genserve.translation.bench import main as bench_translation

        return bench_translation(threads=args.threads, seconds=args.seconds)
    if args.kind == "imagegen":
        from genserve.imagegen.bench import main as bench_imagegen

        return bench_imagegen(threads=args.threads)
    from genserve.gan.bench import bench, startup_seconds

    rows = bench(
        PROJECT_ROOT / "models" / "gan",
        settings.models.dir / "gan",
        threads=args.threads,
        seconds=args.seconds,
        batches=(1, 64),
    )
    print(f"\nGAN generator, {args.threads} threads, samples per second (higher is better)")
    print(f"{'batch':>5}  {'onnxruntime':>12}  {'torch eager':>12}  {'ratio':>6}")
    for r in rows:
        print(
            f"{r['batch']:>5}  {r['onnxruntime_samples_per_s']:>12.1f}  "
            f"{r['torch_eager_samples_per_s']:>12.1f}  {r['ratio']:>5.2f}x"
        )
    if not args.skip_startup:
        print(f"service start to ready: {startup_seconds():.2f} s (bentoml serve -> /readyz 200)")
    return 0


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    """A new API key: the key once on stdout, the entry to add to the keys file after it."""
    import json

    from services.security import SCOPES, key_digest, new_key

    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    unknown = set(scopes) - SCOPES
    if unknown:
        print(f"genserve: unknown scopes {sorted(unknown)}; use {sorted(SCOPES)}", file=sys.stderr)
        return 2
    key = new_key()
    entry: dict[str, object] = {"name": args.name, "sha256": key_digest(key), "scopes": scopes}
    if args.rate_per_minute is not None:
        entry["rate_per_minute"] = args.rate_per_minute
    print(f"key (shown once; give it to {args.name}): {key}")
    print("entry for the keys file (GENSERVE_GATEWAY_KEYS_FILE):")
    print(json.dumps(entry))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genserve", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    models = sub.add_parser("models", help="train, export, pull and verify models")
    msub = models.add_subparsers(dest="action", required=True)
    p = msub.add_parser("train", help="train a demo model from the project's own data")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--out", help="weights folder (default models/<kind>)")
    p.add_argument("--steps", type=int, help="override the recipe's step count")
    p = msub.add_parser("export", help="build the ONNX model folder from a weights folder")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("folder", nargs="?", help="weights folder (default models/<kind>)")
    p.add_argument("--out", help="output folder (default $GENSERVE_MODELS_DIR/<kind>)")
    p = msub.add_parser("pull", help="download a hub checkpoint (network), then export it")
    p.add_argument("kind", choices=("translation", "imagegen"))
    p.add_argument("hub_id", help="e.g. Helsinki-NLP/opus-mt-en-fr or stabilityai/sd-turbo")
    p.add_argument("--revision")
    p = msub.add_parser("verify", help="check a model folder against its manifest")
    p.add_argument("folder")

    s = sub.add_parser("serve", help="start the gateway and every model service (make up)")
    s.add_argument("--host", default="127.0.0.1", help="address the gateway binds")
    s.add_argument("--port-base", type=int, default=3000, help="gateway port; others follow")
    s.add_argument(
        "--auth",
        choices=("on", "off"),
        default="off",
        help="require API keys (GENSERVE_GATEWAY_KEYS_FILE); off = local development",
    )

    k = sub.add_parser("keys", help="API keys for the gateway")
    ksub = k.add_subparsers(dest="action", required=True)
    p = ksub.add_parser("new", help="make a key; prints it once and the hashed entry to store")
    p.add_argument("name", help="who holds it (this name appears in logs, the key never)")
    p.add_argument("--scopes", default="translation,imagegen,gan", help="comma-separated")
    p.add_argument("--rate-per-minute", type=float, help="default: the gateway's")

    i = sub.add_parser("init", help="containers: seed the models volume, make keys (once)")
    i.add_argument("--seed", default="/opt/genserve/models", help="models built into the image")
    i.add_argument("--models", default="/models", help="the models volume")
    i.add_argument("--secrets", default="/secrets", help="the secrets volume")
    i.add_argument("--models-only", action="store_true", help="seed models, make no keys")

    b = sub.add_parser("bench", help="benchmarks, side by side in one run")
    b.add_argument("kind", choices=(*KINDS, "gateway"))
    b.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    b.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    b.add_argument("--skip-startup", action="store_true", help="skip the start-to-ready timing")
    b.add_argument("--requests", type=int, default=400, help="gateway: requests per path")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness poll
    settings = Settings()
    try:
        if args.command == "serve":
            from genserve.launcher import serve

            return serve(args.host, args.port_base, auth=args.auth == "on")
        if args.command == "init":
            from genserve.deploy import init

            secrets = None if args.models_only else Path(args.secrets)
            return init(Path(args.seed), Path(args.models), secrets)
        return {"models": _models, "bench": _bench, "keys": _keys}[args.command](args, settings)
    except GenserveError as exc:
        print(f"genserve: error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
