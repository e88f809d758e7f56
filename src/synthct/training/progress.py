"""``progress.png`` of a synthct training: the stock layout (losses, epoch time, learning rate) with the validation
MAE in HU where stock nnU-Net plots and labels a "pseudo dice".

The trainer logs −MAE under nnU-Net's ``mean_fg_dice`` / ``ema_fg_dice`` keys so that stock bookkeeping (EMA,
best checkpoint) works unchanged; this plot turns them back into MAE and names them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _epochs(log: Mapping[str, Sequence[Any]]) -> int:
    """Completed epochs: the shortest of the logged series (every key gets one value per epoch)."""
    return min(len(v) for v in log.values()) if log else 0


def plot_progress(log: Mapping[str, Sequence[Any]], path: Path) -> Path:
    """Write the three-panel progress plot of ``log`` (the nnU-Net logger's checkpoint dict) to ``path``."""
    progress_figure(log).savefig(path)
    return path


def progress_figure(log: Mapping[str, Sequence[Any]]) -> Any:
    """The matplotlib Figure of :func:`plot_progress` (Agg canvas, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = _epochs(log)
    x = list(range(n))
    fig = Figure(figsize=(12, 16), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_time, ax_lr = fig.subplots(3, 1)
    ax_loss.plot(x, log["train_losses"][:n], color="b", label="train loss (L1, normalised CT)")
    ax_loss.plot(x, log["val_losses"][:n], color="r", label="validation loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend(loc="upper left")
    ax_mae = ax_loss.twinx()
    ax_mae.plot(x, [-v for v in log["mean_fg_dice"][:n]], color="g", ls="dotted", label="validation MAE (HU)")
    ax_mae.plot(x, [-v for v in log["ema_fg_dice"][:n]], color="g", label="validation MAE, EMA (picks best)")
    ax_mae.set_ylabel("MAE in the body [HU]")
    ax_mae.legend(loc="upper right")
    durations = [e - s for e, s in zip(log["epoch_end_timestamps"][:n], log["epoch_start_timestamps"][:n],
                                       strict=True)]
    ax_time.plot(x, durations, color="b", label="epoch duration")
    ax_time.set_ylim(bottom=0)
    ax_time.set_xlabel("epoch")
    ax_time.set_ylabel("time [s]")
    ax_time.legend(loc="upper left")
    ax_lr.plot(x, log["lrs"][:n], color="b", label="learning rate")
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate")
    ax_lr.legend(loc="upper left")
    fig.tight_layout()
    return fig
