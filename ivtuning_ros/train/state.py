"""The resume state of a training run, stored without pickle.

Tensors (model weights, optimizer moments, RNG states) go to a safetensors file; the
rest (epoch, step, best metric, scheduler counters, Python's RNG state, the history) to a
JSON file that names the tensor file. The JSON is replaced atomically last, so a run
killed at any moment leaves either the previous state or the new one, never a mix.
"""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

STATE_JSON = "resume.json"
FORMAT_VERSION = 2  # 2: the prompter's input branches follow the modality (checkpoint.py)


def _encode(obj: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Nested Python/tensor structure -> JSON-able structure; tensors moved into `tensors`."""
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().to("cpu").clone().contiguous()
        return {"__tensor__": path}
    if isinstance(obj, np.ndarray):
        tensors[path] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": path}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _encode(v, f"{path}.{k}", tensors) for k, v in obj.items()}
        if all(isinstance(k, int) for k in obj):
            return {
                "__intdict__": {str(k): _encode(v, f"{path}.{k}", tensors) for k, v in obj.items()}
            }
        raise TypeError(f"resume state: dict at {path} mixes key types")
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{path}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"resume state: cannot store {type(obj).__name__} at {path}")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__intdict__" in obj:
            return {int(k): _decode(v, tensors) for k, v in obj["__intdict__"].items()}
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        return {k: _decode(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    return obj


def capture_rng() -> dict[str, Any]:
    """Every random generator a training step draws from (dropout, modality dropout, data)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save_train_state(run_dir: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` (nested dicts/lists of tensors, arrays and plain values) for --resume."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(state, "state", tensors)
    step = int(state.get("global_step", 0))
    tensor_name = f"resume-{step:09d}.safetensors"
    _write_atomic(run_dir / tensor_name, lambda p: save_file(tensors, str(p)))
    doc = {"format_version": FORMAT_VERSION, "tensors_file": tensor_name, "state": encoded}
    _write_atomic(run_dir / STATE_JSON, lambda p: p.write_text(json.dumps(doc, indent=1) + "\n"))
    for old in run_dir.glob("resume-*.safetensors"):  # earlier states are now unreachable
        if old.name != tensor_name:
            old.unlink(missing_ok=True)
    return run_dir / STATE_JSON


def load_train_state(run_dir: str | Path) -> dict[str, Any]:
    """Read what `save_train_state` wrote; clear errors for a missing or damaged state."""
    path = Path(run_dir) / STATE_JSON
    if not path.is_file():
        raise FileNotFoundError(
            f"--resume: no resume state {path} (was the run started with this --out folder?)"
        )
    try:
        doc = json.loads(path.read_text())
        version, tensor_name = doc["format_version"], doc["tensors_file"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"--resume: {path} is damaged ({err})") from err
    if version != FORMAT_VERSION:
        raise ValueError(f"--resume: {path} has format {version}, expected {FORMAT_VERSION}")
    tensor_path = path.parent / tensor_name
    if not tensor_path.is_file():
        raise FileNotFoundError(f"--resume: {path} names {tensor_path}, which is missing")
    try:
        tensors = load_file(str(tensor_path))
    except Exception as err:  # safetensors raises its own error types for bad files
        raise ValueError(f"--resume: cannot read {tensor_path}: {err}") from err
    try:
        return _decode(doc["state"], tensors)
    except KeyError as err:
        raise ValueError(f"--resume: {tensor_path} lacks tensor {err} named in {path}") from err


@dataclass
class RunState:
    """Where a run stands between steps: everything --resume restores besides tensors.

    `loss_sums` / `loss_batches` are this rank's sums over the batches of the unfinished
    epoch, so a resumed epoch logs the same mean loss as an uninterrupted one.
    """

    epoch: int = 0  # epochs finished
    batch_in_epoch: int = 0  # batches of `epoch` already trained (a mid-epoch save)
    global_step: int = 0
    best_metric: float = -math.inf
    best_epoch: int = -1  # 0-based; -1 before the first validation
    history: list[dict[str, Any]] = field(default_factory=list)
    loss_sums: dict[str, float] = field(default_factory=dict)
    loss_batches: int = 0

    def add_loss(self, parts: dict[str, float]) -> None:
        self.loss_batches += 1
        for k, v in parts.items():
            self.loss_sums[k] = self.loss_sums.get(k, 0.0) + v

    def start_epoch(self) -> None:
        """Forget the finished epoch's sums (a resumed mid-epoch state keeps its own)."""
        if not self.batch_in_epoch:
            self.loss_sums, self.loss_batches = {}, 0

    def partial(self) -> dict[str, Any]:
        """This rank's unfinished-epoch sums as stored (empty at an epoch boundary)."""
        if not self.batch_in_epoch:
            return {"sums": {}, "batches": 0}
        return {"sums": dict(self.loss_sums), "batches": self.loss_batches}

    def saved_fields(self) -> dict[str, Any]:
        """The resume file's keys (kept as they were, so older runs still resume)."""
        return {
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "global_step": self.global_step,
            "best": {"metric": self.best_metric, "epoch": self.best_epoch},
            "history": self.history,
        }

    @classmethod
    def from_saved(cls, saved: dict[str, Any], partial: dict[str, Any]) -> RunState:
        return cls(
            epoch=saved["epoch"],
            batch_in_epoch=saved["batch_in_epoch"],
            global_step=saved["global_step"],
            best_metric=saved["best"]["metric"],
            best_epoch=saved["best"]["epoch"],
            history=saved["history"],
            loss_sums=dict(partial["sums"]),
            loss_batches=int(partial["batches"]),
        )
