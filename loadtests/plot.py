"""The stepped profiles' plot: latency percentiles (p50, p95, p99) and the error ratio
against the offered rate, one point per step."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_steps(rows: list[dict[str, Any]], out: Path, title: str) -> Path | None:
    """Write the PNG; None when there is nothing to draw."""
    rows = [r for r in rows if r["requests"]]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display, no GUI toolkit
    import matplotlib.pyplot as plt

    x = [r["offered_rps"] for r in rows]
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    for key, style in (("p50_ms", "o-"), ("p95_ms", "s-"), ("p99_ms", "^-")):
        ax.plot(x, [r[key] for r in rows], style, label=key.removesuffix("_ms"))
    ax.set_xlabel("offered rate (requests/s, all outcomes, per step)")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    for r in rows:
        ax.annotate(
            f"{r['users']}u",
            (r["offered_rps"], r["p99_ms"]),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
        )
    errors = ax.twinx()
    errors.plot(x, [100 * r["error_ratio"] for r in rows], "x--", color="tab:red", label="errors")
    errors.set_ylabel("error ratio (%, 429s apart)", color="tab:red")
    errors.set_ylim(bottom=0, top=max(5.0, 110 * max(r["error_ratio"] for r in rows)))
    lines = ax.get_legend_handles_labels()
    more = errors.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left")
    ax.set_title(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
