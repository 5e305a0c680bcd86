"""Loss curves of a trained cascade from each stage's log.csv (written by imagen.train).

python -m reports.training CASCADE_DIR --out loss_curves.png
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pandas as pd

from common.files import read_json_object
from common.training_log import LOG_HEADER, training_history


def load_logs(cascade_dir: Path) -> dict[str, pd.DataFrame]:
    """Per stage: every training step behind its weights (a run started with init_from includes
    the history of its starting weights), columns step (total), loss, lr, seconds (total)."""
    index = read_json_object(Path(cascade_dir) / "cascade.json", "restore the cascade's checkpoint from a copy")
    logs = {}
    for name in index["stages"]:
        path = Path(cascade_dir) / name / "log.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} missing: the stage's training log is needed for its loss curve")
        df = pd.read_csv(io.StringIO("\n".join([LOG_HEADER, *training_history(path.parent)])))
        init = path.parent / "init_log.csv"  # its last step is where the init_from phase began
        df.attrs["phase_start"] = int(pd.read_csv(init).step.iloc[-1]) if init.is_file() else None
        logs[name] = df
    return logs


def plot_losses(logs: dict[str, pd.DataFrame], out: Path, window: int = 50) -> Path:
    """One panel per stage: per-step loss (faint) and its `window`-step moving average."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(logs), figsize=(4 * len(logs), 3), squeeze=False)
    for ax, (name, df) in zip(axes[0], logs.items()):
        ax.plot(df.step, df.loss, alpha=0.25, lw=0.5)
        ax.plot(df.step, df.loss.rolling(window, min_periods=1).mean(), lw=1.5, label=f"{window}-step mean")
        if df.attrs.get("phase_start"):
            ax.axvline(df.attrs["phase_start"], color="gray", ls=":", lw=1, label="next phase (init_from)")
        ax.xaxis.set_major_formatter(lambda v, _: f"{v / 1000:g}k")  # 31000 -> 31k: tick labels stay apart
        ax.set(
            title=f"{name}: {int(df.step.max())} steps, {df.seconds.max() / 60:.0f} min",
            xlabel="step",
            ylabel="loss",
            yscale="log",
        )
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("cascade", type=Path)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; choose another --out")
    print(plot_losses(load_logs(args.cascade), args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
