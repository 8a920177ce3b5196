"""DDP through torchrun: two CPU processes on gloo train one model; rank 0 alone writes."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from ivtuning_ros.model.checkpoint import load_checkpoint
from ivtuning_ros.train.trainer import replica_digest

WORKER = """
import json, sys
from ivtuning_ros.train import checkpoints, trainer
from ivtuning_ros.train.config import load_train_config

writes = []
for module, name in ((checkpoints, "save_checkpoint"), (checkpoints, "atomic_write_text"),
                     (trainer, "save_train_state"), (trainer, "atomic_write_text")):
    real = getattr(module, name)
    def counted(*a, _real=real, _name=name, **k):
        writes.append(_name)
        return _real(*a, **k)
    setattr(module, name, counted)
result = trainer.train(load_train_config(sys.argv[1]), sys.argv[2], progress=False)
with open(f"{sys.argv[3]}/rank{result.rank}.json", "w") as fh:
    json.dump({"digest": result.replica_digest, "writes": writes,
               "history": [r["weights_sha256"] for r in result.history]}, fh)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_agree_and_only_rank0_writes(tmp_path):
    cfg = {
        "model": {"preset": "default", "overrides": {"weights": "random", "input_size": [64, 96]}},
        "data": {
            "cache_dir": str(tmp_path / "cache"),
            "train": {"synthetic": {"conditions": ["clear_night"], "count": 20, "seed": 5,
                                    "size": [96, 64]}},
            "val": {"fraction": 0.2},
        },
        "train": {"epochs": 2, "batch_size": 4, "lr": 0.003, "warmup_steps": 1, "amp": "off",
                  "threads": 1, "device": "cpu", "modality_dropout": 0.3},
    }  # fmt: skip
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "worker.py").write_text(WORKER)
    out, reports = tmp_path / "run", tmp_path / "reports"
    reports.mkdir()
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(free_port()), str(tmp_path / "worker.py"),
         str(tmp_path / "cfg.yaml"), str(out), str(reports)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = json.loads((reports / "rank0.json").read_text())
    r1 = json.loads((reports / "rank1.json").read_text())
    # Both replicas hold the same weights after every epoch and at the end...
    assert r0["digest"] == r1["digest"] and r0["history"] == r1["history"]
    # ...which are the weights of the last checkpoint rank 0 wrote.
    assert replica_digest(load_checkpoint(out / "last.safetensors")[0]) == r0["digest"]
    # Rank 0 wrote everything, rank 1 nothing; one header line in the log (rank 0's).
    assert r1["writes"] == [] and "save_checkpoint" in r0["writes"]
    assert proc.stdout.count("train: default") == 1
    assert "world 2" in proc.stdout
    # 16 training pairs over 2 ranks with batch 4: 2 steps per epoch (not 4).
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in log] == [2, 4]
