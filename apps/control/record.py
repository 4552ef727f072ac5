"""Per-tick records of a run: kept in memory, written as CSV (``--log``) and drawn
(``--plot``): actions, observations, compute time and deadline misses over time."""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np


class TickLog:
    """Collects the rows ``apps.control.run(on_tick=log)`` passes, one per tick."""

    def __init__(self):
        self.rows: list[dict] = []

    def __call__(self, row: dict) -> None:
        self.rows.append(row)

    def columns(self) -> list[str]:
        if not self.rows:
            return []
        first = self.rows[0]
        n_obs = max((len(r["obs"]) for r in self.rows if r["obs"] is not None), default=0)
        n_act = len(first["sent"])
        return (["tick", "t_s", "slot", "episode", "jitter_us", "compute_us", "inference_us", "missed", "reward",
                 "interventions"] + [f"obs{i}" for i in range(n_obs)] + [f"raw{i}" for i in range(n_act)]
                + [f"action{i}" for i in range(n_act)])

    def to_csv(self) -> str:
        out = io.StringIO()
        columns = self.columns()
        writer = csv.writer(out)
        writer.writerow(columns)
        n_obs = sum(c.startswith("obs") for c in columns)
        n_act = sum(c.startswith("action") for c in columns)
        for r in self.rows:
            obs = list(r["obs"]) if r["obs"] is not None else [""] * n_obs
            raw = list(r["raw"]) if r["raw"] is not None else [""] * n_act
            writer.writerow([r["tick"], f"{r['t_s']:.6f}", r["slot"], r["episode"], f"{r['jitter_us']:.1f}",
                             f"{r['compute_us']:.1f}", f"{r['inference_us']:.1f}", int(r["missed"]),
                             f"{r['reward']:.6g}", ";".join(r["interventions"])]
                            + [f"{v:.6g}" for v in obs] + [f"{v:.6g}" if v != "" else "" for v in raw]
                            + [f"{v:.6g}" for v in r["sent"]])
        return out.getvalue()

    def write(self, path: str | os.PathLike, force: bool = False) -> Path:
        """CSV (``.csv``); written atomically, an existing file kept unless ``force``."""
        path = Path(path)
        if path.suffix.lower() != ".csv":
            raise ValueError(f"--log {path}: only .csv is written (one row per tick); Parquet is not supported yet")
        _write_atomic(path, self.to_csv().encode("utf-8"), force)
        return path

    def plot(self, path: str | os.PathLike, title: str = "", force: bool = False) -> Path:
        """Actions, observations, compute time and deadline misses over time, as a PNG."""
        from edge_runtime.deps import require

        require("matplotlib", "--plot")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if not self.rows:
            raise ValueError("--plot: the run recorded no ticks")
        t = np.array([r["t_s"] for r in self.rows])
        sent = np.array([r["sent"] for r in self.rows])
        obs = np.array([r["obs"] if r["obs"] is not None and np.all(np.isfinite(r["obs"])) else
                        np.full(len(self.rows[0]["obs"]), np.nan) for r in self.rows])
        compute = np.array([r["compute_us"] for r in self.rows])
        missed = np.array([r["missed"] for r in self.rows])
        fig, axes = plt.subplots(4, 1, figsize=(10, 9), sharex=True)
        axes[0].plot(t, sent)
        axes[0].set_ylabel("action")
        axes[1].plot(t, obs, linewidth=0.8)
        axes[1].set_ylabel("observation")
        axes[2].plot(t, compute, linewidth=0.6)
        axes[2].set_ylabel("compute (us)")
        axes[3].vlines(t[missed], 0, 1, colors="red", linewidth=0.8)
        flagged = np.array([bool(r["interventions"]) for r in self.rows])
        axes[3].vlines(t[flagged], 1.2, 2.2, colors="orange", linewidth=0.8)
        axes[3].set_yticks([0.5, 1.7], ["missed", "intervention"])
        axes[3].set_xlabel("time (s)")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
        plt.close(fig)
        _write_atomic(Path(path), buffer.getvalue(), force)
        return Path(path)


def _write_atomic(path: Path, data: bytes, force: bool) -> None:
    if path.exists() and not force:
        raise FileExistsError(f"{path}: already exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
