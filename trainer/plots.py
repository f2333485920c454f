"""Training curves: accuracy and loss, training vs validation, per epoch: the two plots to look at first."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a workstation over ssh or in CI

import matplotlib.pyplot as plt  # noqa: E402

from ..edge.files import atomic_path  # noqa: E402


def plot_curves(history: dict[str, list[float]], path: Path, title: str = "") -> Path:
    epochs = range(1, len(history["loss"]) + 1)
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((ax_acc, "accuracy", "accuracy"), (ax_loss, "loss", "loss")):
        ax.plot(epochs, history[key], "o-", label=f"training {label}")
        ax.plot(epochs, history[f"val_{key}"], "s-", label=f"validation {label}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
