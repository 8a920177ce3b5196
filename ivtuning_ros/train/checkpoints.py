"""What a run keeps on disk after each epoch: best (on validation), last, and the log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ivtuning_ros.model import IVTuningModel
from ivtuning_ros.model.checkpoint import save_checkpoint
from ivtuning_ros.train.state import RunState


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


class CheckpointKeeper:
    """Decides whether an epoch is the best so far (validation only, never test) and, on
    the writing rank, saves best.safetensors, last.safetensors and a train_log.jsonl line."""

    def __init__(self, out: Path, select_metric: str, train_config: dict[str, Any], writes: bool):
        self.out, self.select_metric = out, select_metric
        self.train_config, self.writes = train_config, writes

    @property
    def best_path(self) -> Path:
        return self.out / "best.safetensors"

    def end_epoch(
        self, model: IVTuningModel, state: RunState, record: dict[str, Any], val: dict[str, float]
    ) -> bool:
        """Record the finished epoch `state.epoch` in `state` and on disk; True if best."""
        if self.select_metric not in val:
            raise ValueError(
                f"train.select_metric {self.select_metric!r} is not a validation figure; "
                f"choose from {sorted(val)}"
            )
        score = float(val[self.select_metric])
        improved = score > state.best_metric
        if improved:
            state.best_metric, state.best_epoch = score, state.epoch
        record["best"] = improved
        state.history.append(record)
        if not self.writes:
            return improved
        meta = {
            "epoch": state.epoch + 1,
            "global_step": state.global_step,
            "select_metric": self.select_metric,
            "validation": val,
            "train_config": self.train_config,
        }
        if improved:
            save_checkpoint(self.best_path, model, meta)
        save_checkpoint(self.out / "last.safetensors", model, meta)
        with open(self.out / "train_log.jsonl", "a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
        best = "(best)" if improved else f"(best {state.best_metric:.4f})"
        loss = record["train"].get("loss", float("nan"))
        val_text = f"val {self.select_metric} {score:.4f} {best}"
        print(f"epoch {state.epoch + 1}: loss {loss:.4f}, {val_text}")
        return improved
