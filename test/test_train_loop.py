"""The training loop on a tiny model: checkpoints, selection on validation, exact resume,
every task and mode, bf16 autocast."""

import copy
import itertools
import json

import pytest
import torch
from safetensors import safe_open

from ivtuning_ros.data.synthetic import SEG_CLASSES
from ivtuning_ros.model.checkpoint import load_checkpoint
from ivtuning_ros.train.config import parse_train_config
from ivtuning_ros.train.state import load_train_state
from ivtuning_ros.train.trainer import EpochSampler, lr_factor, train


def tiny(cache, **train_overrides) -> dict:
    """EfficientNet-Lite0 structure with random weights at 64x96 on 16 synthetic pairs."""
    raw = {
        "model": {"preset": "default", "overrides": {"weights": "random", "input_size": [64, 96]}},
        "data": {
            "cache_dir": str(cache),
            "train": {
                "synthetic": {
                    "conditions": ["clear_night", "light_fog"], "count": 16, "seed": 3,
                    "size": [96, 64],
                }
            },
            "val": {"fraction": 0.25},
        },
        "train": {"epochs": 2, "batch_size": 4, "lr": 0.003, "warmup_steps": 1, "amp": "off",
                  "threads": 1, "modality_dropout": 0.3},
    }  # fmt: skip
    raw["train"].update(train_overrides)
    return raw


class Interrupt(Exception):
    pass


def test_run_writes_trainable_only_checkpoints_and_selects_on_validation(tmp_path):
    out = tmp_path / "run"
    result = train(parse_train_config(tiny(tmp_path / "cache")), out, progress=False)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    val = [r["val"]["map50"] for r in log]
    assert result.best_epoch == 1 + max(range(2), key=lambda i: (val[i], -i))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["validation"] == log[result.best_epoch - 1]["val"]
    assert metrics["test"] is None  # no test split configured: nothing is scored on it
    with safe_open(str(out / "best.safetensors"), "pt") as f:
        keys = list(f.keys())
        meta = json.loads(f.metadata()["metadata"])
    assert keys and not any(k.startswith("backbone.") for k in keys)
    assert meta["epoch"] == result.best_epoch and meta["select_metric"] == "map50"
    model, info = load_checkpoint(out / "best.safetensors")
    assert info.config.input_size == (64, 96)
    # the node's default score threshold: the best F1 on validation, kept with the weights
    assert info.score_threshold == metrics["validation"]["best_f1_threshold"]
    # Frozen weights have no optimizer state: one entry per trainable tensor only.
    state = load_train_state(out)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == result.parameters["trainable"]
    assert len(trainable) < len(list(model.parameters()))  # the backbone is frozen
    assert len(state["optimizer"]["state"]) == len(trainable)
    assert state["epoch"] == 2 and state["global_step"] == 6
    with pytest.raises(ValueError, match="already holds a run"):
        train(parse_train_config(tiny(tmp_path / "cache")), out, progress=False)


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, ema_decay):
    raw = tiny(tmp_path / "cache", save_every_steps=2, ema_decay=ema_decay)
    full = train(parse_train_config(raw), tmp_path / "full", progress=False)

    def crash(step, loss):
        if step == 5:  # 3 steps per epoch: the last resume point is step 4, inside epoch 2
            raise Interrupt

    with pytest.raises(Interrupt):
        train(parse_train_config(raw), tmp_path / "cut", on_step=crash, progress=False)
    saved = load_train_state(tmp_path / "cut")
    assert (saved["global_step"], saved["epoch"], saved["batch_in_epoch"]) == (4, 1, 1)
    resumed = train(parse_train_config(raw), tmp_path / "cut", resume=True, progress=False)

    def figures(history):
        return [{k: v for k, v in r.items() if k != "epoch_s"} for r in history]

    assert figures(resumed.history) == figures(full.history)
    a = load_checkpoint(tmp_path / "full" / "last.safetensors")[0].state_dict()
    b = load_checkpoint(tmp_path / "cut" / "last.safetensors")[0].state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # With EMA the checkpoints hold the moving average, not the last step's weights.
    trained = load_train_state(tmp_path / "cut")["model"]
    differs = any(not torch.equal(trained[k], a[k]) for k in trained if k in a)
    assert differs == bool(ema_decay)

    changed = copy.deepcopy(raw)
    changed["train"]["lr"] = 0.1
    with pytest.raises(ValueError, match=r"train\.lr"):
        train(parse_train_config(changed), tmp_path / "cut", resume=True, progress=False)


@pytest.mark.parametrize(
    ("task", "mode", "amp", "ckpt"),
    [
        ("segmentation", "full", "off", False),
        ("saliency", "thermal_only", "off", False),
        ("detection", "rgb_only", "bf16", False),
        ("detection", "dual_backbone", "off", False),
        ("detection", "ivtuning", "off", True),
    ],
)
def test_every_task_and_mode_trains(tmp_path, task, mode, amp, ckpt):
    raw = tiny(tmp_path / "cache", epochs=1, amp=amp)
    raw["model"]["overrides"]["grad_checkpointing"] = ckpt
    preset = {"detection": "default", "segmentation": "efficientnet_lite0_seg",
              "saliency": "efficientnet_lite0_sod"}[task]  # fmt: skip
    raw["model"]["preset"] = preset
    raw["model"]["overrides"]["mode"] = mode
    if task == "segmentation":  # the preset names MFNet's classes; ours are the scene's
        raw["model"]["overrides"]["class_names"] = list(SEG_CLASSES)
    result = train(parse_train_config(raw), tmp_path / "run", progress=False)
    expected = {"detection": "map50", "segmentation": "miou", "saliency": "s_measure"}[task]
    assert result.select_metric == expected
    assert result.history[0]["train"]["loss"] > 0
    _, info = load_checkpoint(result.best_checkpoint)
    assert info.config.task == task and info.config.mode == mode


def test_sampler_shards_evenly_and_restarts_mid_epoch():
    ranks = [EpochSampler(10, 2, seed=1, rank=r, world=2) for r in range(2)]
    for s in ranks:
        s.set_epoch(3)
    a, b = list(ranks[0]), list(ranks[1])
    assert len(a) == len(b) == 4 and not set(a) & set(b)
    ranks[0].set_epoch(3, start_batch=1)
    assert list(ranks[0]) == a[2:]
    ranks[0].set_epoch(4)
    assert list(ranks[0]) != a


def test_lr_schedule_warms_up_then_decays():
    f = [lr_factor(s, 10, 100) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[10] == pytest.approx(1.0)
    assert all(x >= y for x, y in itertools.pairwise(f[10:])) and f[-1] > 0.05


def test_init_checkpoint_carries_trained_weights_and_class_rows_by_name(tmp_path):
    """Fine-tuning from a checkpoint with other classes: shared tensors are copied, the
    head's class rows follow their names (person stays person, dog is dropped)."""
    from ivtuning_ros.model import build_model
    from ivtuning_ros.model.checkpoint import init_from_checkpoint

    out = tmp_path / "run"
    train(parse_train_config(tiny(tmp_path / "cache", epochs=1)), out, progress=False)
    source, info = load_checkpoint(out / "best.safetensors")
    names = list(info.config.class_names)  # person, car, bicycle, dog
    target = build_model(info.config.replace(class_names=("bicycle", "person", "tram")))
    report = init_from_checkpoint(target, out / "best.safetensors")
    assert report["classes_carried"] == ["bicycle", "person"]
    src_w, new_w = source.head.cls_out.weight, target.head.cls_out.weight
    assert torch.equal(new_w[0], src_w[names.index("bicycle")])
    assert torch.equal(new_w[1], src_w[names.index("person")])
    assert torch.equal(target.head.cls_tower[0][0][0].weight, source.head.cls_tower[0][0][0].weight)
    # through the training config: the run records what it started from
    cfg = tiny(tmp_path / "cache", epochs=1, init_checkpoint=str(out / "best.safetensors"))
    train(parse_train_config(cfg), tmp_path / "tuned", progress=False)
    metrics = json.loads((tmp_path / "tuned" / "metrics.json").read_text())
    assert metrics["init"]["classes_carried"] == names and not metrics["init"]["tensors_skipped"]


def test_train_extra_pools_another_source_with_its_classes_matched_by_name(tmp_path):
    """A second training source joins the first; its classes map to the model's by name
    and a class the model lacks (dog, for a person/car/bicycle model) is left out."""
    from ivtuning_ros.data.classes import Relabeled
    from ivtuning_ros.train.config import parse_train_config as parse
    from ivtuning_ros.train.data import build_splits
    from ivtuning_ros.train.trainer import _match_classes

    raw = tiny(tmp_path / "cache", epochs=1)
    extra = {"synthetic": {"conditions": ["dense_fog"], "count": 6, "seed": 9, "size": [96, 64]}}
    raw["data"]["train_extra"] = [extra]
    train(parse(raw), tmp_path / "run", progress=False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train_pairs"] == 12 + 6  # 16 minus a quarter for validation, plus 6
    cfg = parse(raw)
    model_cfg = cfg.model.resolve().replace(class_names=("person", "car", "bicycle"))
    names = cfg.model.resolve().class_names
    splits = build_splits(cfg.data, progress=False)
    with pytest.raises(ValueError, match="class names differ"):  # the main source: exact
        _match_classes(model_cfg, splits)
    splits.class_names["detection"] = ("person", "car", "bicycle")  # as if it had no dogs
    pooled = _match_classes(model_cfg, splits).train
    extra_part = pooled.datasets[1]
    assert isinstance(extra_part, Relabeled) and extra_part.cmap.unmatched_data == ("dog",)
    dogs = names.index("dog")
    raw_labels = [int(c) for s in splits.train_extra[0] for c in s.labels]
    kept = [int(c) for i in range(len(extra_part)) for c in extra_part[i].labels]
    assert len(kept) == len([c for c in raw_labels if c != dogs]) and max(kept) < 3


def test_each_rank_resumes_its_own_loss_sums(tmp_path):
    """Resume points keep every rank's loss sums of the unfinished epoch (a list by rank),
    so a resumed epoch's logged loss is every rank's mean, not rank 0's sums repeated; a
    state saved before that (one dict) still resumes."""
    from ivtuning_ros.train.distributed import DistContext
    from ivtuning_ros.train.trainer import _own_partial

    raw = tiny(tmp_path / "cache", save_every_steps=1)

    def crash(step, loss):
        if step == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(parse_train_config(raw), tmp_path / "cut", on_step=crash, progress=False)
    saved = load_train_state(tmp_path / "cut")["partial"]
    assert isinstance(saved, list) and len(saved) == 1 and saved[0]["batches"] == 1
    two = [{"sums": {"loss": 1.0}, "batches": 1}, {"sums": {"loss": 3.0}, "batches": 1}]
    assert _own_partial(two, DistContext(rank=1, world_size=2)) == two[1]
    assert _own_partial(two[0], DistContext(rank=1, world_size=2)) == two[0]  # older states
