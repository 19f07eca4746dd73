"""Does the translation worker's memory grow without bound under varied input?

    python -m loadtests.translation_memory [--calls 500] [--no-memory-pattern]

The translation model in process, on one CPU, fed fuzz-like batches: 1 to 32 rows of 1 to
60 random source ids, greedy or 4 beams, 8 to 64 new tokens, attention on a third of
the calls (every shape different, as fuzzing and real traffic make them). Prints the
process's RSS (MiB) every 25 calls. A leak climbs with the calls; a cache (ONNX
Runtime's memory arena, sized by the largest shapes seen, and the allocator's free
lists) rises while new shapes come and then holds. ``--no-memory-pattern`` turns ONNX
Runtime's per-shape memory patterns off, to see whether they are what grows.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

import psutil


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.translation_memory", description=__doc__)
    p.add_argument("--calls", type=int, default=500)
    p.add_argument("--models-dir", type=Path, default=Path("build/models"))
    p.add_argument("--no-memory-pattern", action="store_true")
    args = p.parse_args(argv)
    import onnxruntime as ort

    if args.no_memory_pattern:
        original = ort.SessionOptions

        def no_pattern() -> ort.SessionOptions:
            made = original()
            made.enable_mem_pattern = False
            return made

        ort.SessionOptions = no_pattern
    from genserve.config import RuntimeSettings
    from genserve.translation.translator import Options, Translator

    os.sched_setaffinity(0, [0])
    model = Translator(args.models_dir / "translation", RuntimeSettings(intra_op_threads=1))
    eos, rng, me = model.config["eos_token_id"], random.Random(0), psutil.Process()
    rss = []
    for call in range(args.calls):
        rows = [
            [rng.randrange(5, 900) for _ in range(rng.randint(1, 60))] + [eos]
            for _ in range(rng.choice([1, 1, 2, 4, 8, 16, 32]))
        ]
        decoding = Options(
            num_beams=rng.choice([1, 1, 4]),
            max_new_tokens=rng.choice([8, 32, 64]),
            return_attention=rng.random() < 0.3,
        )
        model.translate_ids(rows, decoding)
        if call % 25 == 0 or call == args.calls - 1:
            rss.append(me.memory_info().rss / 2**20)
            print(f"call {call:>5}: RSS {rss[-1]:.0f} MiB", flush=True)
    half = rss[len(rss) // 2 :]
    print(f"second half: min {min(half):.0f}, max {max(half):.0f}, last {rss[-1]:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
