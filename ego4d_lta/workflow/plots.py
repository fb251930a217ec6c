"""The PNGs: ED@z curves (validate --plot, report) and training curves (report), written atomically."""

from __future__ import annotations

from pathlib import Path

from ego4d_lta.base.durable import atomic_target
from ego4d_lta.challenge.metrics import HEADS


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display on a cluster node)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, out: Path | str) -> Path:
    """Write `fig` beside `out`, then rename: never a half-written PNG."""
    plt = pyplot()
    out = Path(out)
    fig.tight_layout()
    try:
        with atomic_target(out, suffix=".png") as tmp:
            fig.savefig(tmp, bbox_inches="tight")
    finally:
        plt.close(fig)
    return out


def plot_ed_at_z(curves: dict[str, dict[str, list[float]]], out: Path | str, title: str = "") -> Path:
    """ED@z, z = 1..20, one panel per head (verb, noun, action), one line per name -> {head: values}."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), dpi=110, sharey=True)
    for name, by_head in curves.items():
        for ax, head in zip(axes, HEADS, strict=True):
            values = by_head[head]
            ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=f"{name} ({values[-1]:.3f})")
    for ax, head in zip(axes, HEADS, strict=True):
        ax.set_title(f"{head}: ED@z{' at the best epoch' if not title else ''}")
        ax.set_xlabel("z (future actions)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        if curves:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no run recorded ED@z", ha="center", transform=ax.transAxes)
    axes[0].set_ylabel("ED@z (lower is better)")
    if title:
        fig.suptitle(title)
    return save(fig, out)
