"""The ``genserve`` command: train, export and verify models; run benchmarks."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from genserve.config import PROJECT_ROOT, Settings
from genserve.errors import GenserveError

KINDS = ("gan",)


def _models(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "train":
        from genserve.gan.train import train

        out = Path(args.out or PROJECT_ROOT / "models" / args.kind)
        overrides = {"steps": args.steps} if args.steps else {}
        print(json.dumps(train(out, **overrides), indent=2))
    elif args.action == "export":
        from genserve.gan.export import export

        weights = Path(args.weights or PROJECT_ROOT / "models" / args.kind)
        out = Path(args.out or settings.models.dir / args.kind)
        print(json.dumps(export(weights, out), indent=2))
    elif args.action == "verify":
        from genserve.artifacts import load_manifest

        m = load_manifest(Path(args.folder))
        print(f"ok: {m.kind} model {m.name!r}, {len(m.files)} file(s) match {m.folder}")
    return 0


def _bench(args: argparse.Namespace, settings: Settings) -> int:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genserve", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    models = sub.add_parser("models", help="train, export and verify models")
    msub = models.add_subparsers(dest="action", required=True)
    p = msub.add_parser("train", help="train a demo model from the project's own data")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--out", help="weights folder (default models/<kind>)")
    p.add_argument("--steps", type=int, help="override the recipe's step count")
    p = msub.add_parser("export", help="build the ONNX model folder from committed weights")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--weights", help="weights folder (default models/<kind>)")
    p.add_argument("--out", help="output folder (default $GENSERVE_MODELS_DIR/<kind>)")
    p = msub.add_parser("verify", help="check a model folder against its manifest")
    p.add_argument("folder")

    b = sub.add_parser("bench", help="benchmarks, side by side in one run")
    b.add_argument("kind", choices=KINDS)
    b.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    b.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    b.add_argument("--skip-startup", action="store_true", help="skip the start-to-ready timing")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings()
    try:
        return {"models": _models, "bench": _bench}[args.command](args, settings)
    except GenserveError as exc:
        print(f"genserve: error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
