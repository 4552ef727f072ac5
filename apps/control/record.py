"""Per-tick records of a run: kept in memory, written as CSV or Parquet (``--log``) and drawn
(``--plot``): actions, observations, compute time and deadline misses over time."""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

LOG_SUFFIXES = (".csv", ".parquet")


class TickLog:
    """Collects the rows ``apps.control.run(on_tick=log)`` passes, one per tick."""

    def __init__(self):
        self.rows: list[dict] = []

    def __call__(self, row: dict) -> None:
        self.rows.append(row)

    def columns(self) -> list[str]:
        return list(self.table())

    def table(self) -> dict[str, list]:
        """Column name -> one typed value per tick (``None`` where a tick has no value, e.g.
        the raw action of a tick whose inference raised). CSV and Parquet are written from it."""
        if not self.rows:
            return {}
        n_obs = max((len(r["obs"]) for r in self.rows if r["obs"] is not None), default=0)
        n_act = len(self.rows[0]["sent"])
        table: dict[str, list] = {
            "tick": [int(r["tick"]) for r in self.rows],
            "t_s": [float(r["t_s"]) for r in self.rows],
            "slot": [int(r["slot"]) for r in self.rows],
            "episode": [int(r["episode"]) for r in self.rows],
            "jitter_us": [float(r["jitter_us"]) for r in self.rows],
            "compute_us": [float(r["compute_us"]) for r in self.rows],
            "inference_us": [float(r["inference_us"]) for r in self.rows],
            "missed": [bool(r["missed"]) for r in self.rows],
            "reward": [float(r["reward"]) for r in self.rows],
            "interventions": [";".join(r["interventions"]) for r in self.rows],
        }
        for prefix, key, n in (("obs", "obs", n_obs), ("raw", "raw", n_act), ("action", "sent", n_act)):
            for i in range(n):
                table[f"{prefix}{i}"] = [float(r[key][i]) if r[key] is not None else None for r in self.rows]
        return table

    def to_csv(self) -> str:
        out = io.StringIO()
        table = self.table()
        writer = csv.writer(out)
        writer.writerow(list(table))
        for values in zip(*table.values()):
            writer.writerow([f"{v:.6f}" if name == "t_s" else _csv_cell(v)  # t_s: to the microsecond
                             for name, v in zip(table, values)])
        return out.getvalue()

    def to_parquet(self) -> bytes:
        """The same columns as the CSV, typed (int64, float64, bool, string), as Parquet bytes."""
        from edge_runtime.deps import require

        require("pyarrow", "--log FILE.parquet")
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = self.table()
        kinds = {"tick": pa.int64(), "slot": pa.int64(), "episode": pa.int64(), "missed": pa.bool_(),
                 "interventions": pa.string()}
        schema = pa.schema([(name, kinds.get(name, pa.float64())) for name in table])  # typed even when all empty
        buffer = io.BytesIO()
        pq.write_table(pa.table(table, schema=schema), buffer)
        return buffer.getvalue()

    def write(self, path: str | os.PathLike, force: bool = False) -> Path:
        """One row per tick, as ``.csv`` or ``.parquet`` (by the suffix); written atomically,
        an existing file kept unless ``force``."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in LOG_SUFFIXES:
            raise ValueError(f"--log {path}: expected a .csv or .parquet file name, got {suffix or 'no suffix'!r}")
        if not self.rows:
            raise ValueError(f"--log {path}: the run recorded no ticks")
        data = self.to_parquet() if suffix == ".parquet" else self.to_csv().encode("utf-8")
        _write_atomic(path, data, force)
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


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)
