"""The training loop: one config in, a run folder out.

Run folder (written by rank 0 only):
  best.safetensors   checkpoint chosen on the VALIDATION split (never on test)
  last.safetensors   checkpoint of the last finished epoch
  resume.json + resume-*.safetensors   everything --resume needs (see state.py)
  train_log.jsonl    one line per epoch (losses, validation metrics, timings)
  metrics.json       the best epoch's validation metrics, and test metrics if configured
  config.json        the resolved train config and model config

The optimizer sees only trainable parameters, so frozen backbone weights carry neither
gradients nor optimizer state. Data order, augmentation and modality dropout depend on
(seed, epoch, index) and the model's dropout on the saved RNG state, so a resumed run
continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import ConcatDataset, DataLoader, Sampler
from tqdm import tqdm

from ivtuning_ros.data.classes import Relabeled, match_classes
from ivtuning_ros.data.dataset import PreparedDataset, collate
from ivtuning_ros.data.real import expand_path
from ivtuning_ros.evaluation.metrics import SELECTION_METRICS, metric_for_task
from ivtuning_ros.model import IVTuningModel, ModelConfig, build_model
from ivtuning_ros.model.checkpoint import (
    init_from_checkpoint,
    save_checkpoint,
    trainable_state_dict,
)
from ivtuning_ros.postprocess import decode_detections, decode_mask, decode_saliency
from ivtuning_ros.train import distributed as dist_utils
from ivtuning_ros.train.config import TrainConfig, config_to_dict
from ivtuning_ros.train.data import Splits, build_splits
from ivtuning_ros.train.state import capture_rng, load_train_state, restore_rng, save_train_state

StepHook = Callable[[int, float], None]  # (global step, loss) after each optimizer step


@dataclass
class TrainResult:
    rank: int
    replica_digest: str  # SHA-256 of the final trainable weights (equal on every rank)
    run_dir: Path
    best_checkpoint: Path
    best_epoch: int
    best_metric: float
    select_metric: str
    history: list[dict[str, Any]]
    test_metrics: dict[str, float] | None
    parameters: dict[str, Any]
    step_times_s: list[float] = field(default_factory=list)


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch, sharded over ranks, that can start mid-epoch.

    Every rank takes the same number of batches (the permutation is padded by wrapping),
    which DDP needs; `start_batch` skips batches an interrupted run already trained on.
    """

    def __init__(self, size: int, batch_size: int, seed: int, rank: int, world: int) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world = rank, world
        self.epoch, self.start_batch = 0, 0
        per_rank = math.ceil(size / world)
        # Drop a last partial batch when there is more than one batch: BN needs > 1 sample.
        self.batches = max(1, per_rank // batch_size) if per_rank >= batch_size else 1

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def _indices(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=g).tolist()
        per_rank = math.ceil(self.size / self.world)
        order = (order * (self.world + 1))[: per_rank * self.world]
        mine = order[self.rank :: self.world]
        return mine[: min(len(mine), self.batches * self.batch_size)]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.start_batch * self.batch_size :])

    def __len__(self) -> int:
        return len(self._indices()) - self.start_batch * self.batch_size


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a config value on a device (None: full fp32)."""
    if amp == "off":
        return None
    if device.type == "cuda":
        if amp == "bf16" and not torch.cuda.is_bf16_supported():
            raise ValueError("train.amp is bf16 but this CUDA device has no bf16 support")
        return torch.bfloat16 if amp == "bf16" else torch.float16
    if amp == "fp16":
        raise ValueError("train.amp fp16 needs a CUDA device; use bf16 or auto on the CPU")
    native_bf16 = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    if amp == "bf16" or native_bf16:
        return torch.bfloat16
    return None  # auto on a CPU without native bf16: emulated bf16 would only be slower


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over trainable parameters only; no decay on biases and normalisation weights."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
    )


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up from 10% of the learning rate, then a cosine down to 5%."""
    if warmup and step < warmup:
        return 0.1 + 0.9 * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))


def _model_state(model: IVTuningModel) -> dict[str, torch.Tensor]:
    return trainable_state_dict(model)


def replica_digest(model: IVTuningModel) -> str:
    """SHA-256 of the trainable tensors: DDP replicas must agree on it bit for bit."""
    digest = hashlib.sha256()
    for k, v in sorted(trainable_state_dict(model).items()):
        digest.update(k.encode())
        digest.update(v.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _check_replicas(ctx: dist_utils.DistContext, model: IVTuningModel, epoch: int) -> str:
    """Make buffers (BN running statistics, which each rank updates from its own shard in
    the last forward pass) rank 0's, then insist that every replica is identical."""
    if ctx.distributed:
        for buf in model.buffers():
            torch.distributed.broadcast(buf, src=0)
    mine = replica_digest(model)
    if ctx.distributed:
        every = [None] * ctx.world_size
        torch.distributed.all_gather_object(every, mine)
        if len(set(every)) != 1:
            raise RuntimeError(
                f"DDP replicas diverged after epoch {epoch + 1}: weight digests {every}"
            )
    return mine


def _load_model_state(model: IVTuningModel, state: dict[str, torch.Tensor]) -> None:
    expected = set(trainable_state_dict(model))
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(
            f"--resume: saved weights do not fit the model (missing {missing[:5]}, "
            f"unexpected {extra[:5]}); was the config changed?"
        )
    model.load_state_dict(state, strict=False)


@torch.no_grad()
def evaluate_model(
    model: IVTuningModel,
    dataset: PreparedDataset,
    batch_size: int,
    score_threshold: float,
    device: torch.device,
    progress: bool = False,
) -> dict[str, float]:
    """Metrics of the in-memory model on a split, in ORIGINAL image pixels.

    The same inference module and postprocess functions as the engine and node; only the
    backend differs (eager torch on this process's device, fp32).
    """
    cfg = model.cfg
    infer = model.inference_module()
    metric = metric_for_task(cfg.task, cfg.class_names)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, collate_fn=collate,
        generator=torch.Generator().manual_seed(0),  # leaves the global RNG untouched
    )  # fmt: skip
    for rgb, thermal, targets in tqdm(loader, desc="validate", leave=False, disable=not progress):
        outputs = [o.float().cpu().numpy() for o in infer(rgb.to(device), thermal.to(device))]
        for i, tgt in enumerate(targets):
            box = tgt["letterbox"]
            hw = tuple(int(v) for v in tgt["orig_hw"])
            if cfg.task == "detection":
                dets = decode_detections(
                    outputs[0][i], outputs[1][i], outputs[2][i], box,
                    score_threshold=score_threshold, max_detections=100,
                )  # fmt: skip
                gt = box.boxes_to_source(tgt["boxes"].numpy())
                metric.update(gt, tgt["labels"].numpy(), dets, hw)
            elif cfg.task == "segmentation":
                gt = box.map_to_source(tgt["mask"].numpy().astype(np.uint8), cv2.INTER_NEAREST)
                metric.update(decode_mask(outputs[0][i], box), gt)
            else:
                gt = box.map_to_source(tgt["saliency"].numpy()[0], cv2.INTER_LINEAR)
                metric.update(decode_saliency(outputs[0][i], box), gt)
    model.train()
    return metric.compute()


def _refuse_extra(splits: Splits, task: str) -> Splits:
    if splits.train_extra:
        raise ValueError(f"data.train_extra pools detection data; this model's task is {task}")
    return splits


def _match_classes(model_cfg: ModelConfig, splits: Splits) -> Splits:
    """The splits with their labels in the model's class ids, matched by name (a data
    set may number the same classes in another order); segmentation and saliency
    classes must agree as they are."""
    task, data_names = model_cfg.task, splits.class_names
    if task not in data_names:
        raise ValueError(
            f"the model's task is {task} but the training data has only "
            f"{', '.join(data_names) or 'no'} targets"
        )
    if task == "saliency":
        return _refuse_extra(splits, task)
    if task != "detection":
        if tuple(data_names[task]) != tuple(model_cfg.class_names):
            raise ValueError(
                f"class names differ: model {list(model_cfg.class_names)} vs training data "
                f"{list(data_names[task])} (same names in the same order are needed)"
            )
        return _refuse_extra(splits, task)
    cmap = match_classes(data_names[task], model_cfg.class_names, exact=True, what="training data")
    relabel = partial(Relabeled, cmap=cmap)
    train, val = splits.train, splits.val
    test = splits.test
    if not cmap.identity:
        train, val = relabel(train), relabel(val)
        test = relabel(test) if test is not None else None
    if splits.train_extra:
        pooled = [train]
        for extra in splits.train_extra:  # another data set's classes, matched by name
            names = getattr(extra, "class_names", None) or data_names[task]
            emap = match_classes(names, model_cfg.class_names, exact=False, what="train_extra")
            pooled.append(Relabeled(extra, emap))
        train = ConcatDataset(pooled)
    return Splits(train, val, test, splits.class_names)


def _own_partial(saved: Any, ctx: dist_utils.DistContext) -> dict[str, Any]:
    """This rank's loss sums of the interrupted epoch: saved per rank (a list), or, from
    runs saved before that, rank 0's alone (a dict) for every rank."""
    if isinstance(saved, list):
        return saved[ctx.rank] if len(saved) == ctx.world_size else saved[0]
    return saved


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    on_step: StepHook | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train as configured. Every rank returns its result; rank 0 alone writes files."""
    ctx = dist_utils.setup_distributed(cfg.train.device)
    try:
        return _train(cfg, Path(out_dir), resume, on_step, progress, ctx)
    finally:
        dist_utils.teardown_distributed(ctx)


def _train(
    cfg: TrainConfig,
    out: Path,
    resume: bool,
    on_step: StepHook | None,
    progress: bool,
    ctx: dist_utils.DistContext,
) -> TrainResult:
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    show = progress and ctx.is_main
    model_cfg = cfg.model.resolve()
    select_name, _ = SELECTION_METRICS[model_cfg.task]
    select_name = tc.select_metric or select_name
    amp_dtype = resolve_amp(tc.amp, ctx.device)
    cfg_dict = config_to_dict(cfg)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if not resume and (out / "resume.json").exists():
            raise ValueError(
                f"{out} already holds a run (resume.json): pass --resume to continue it or "
                "choose another --out"
            )

    # Data: rank 0 renders synthetic sources, the other ranks wait and open them.
    if ctx.is_main:
        splits = build_splits(cfg.data, render=True, progress=show)
    dist_utils.barrier(ctx)
    if not ctx.is_main:
        splits = build_splits(cfg.data, render=False, progress=False)
    splits = _match_classes(model_cfg, splits)
    norm = model_cfg.thermal_norm
    train_set = PreparedDataset(
        splits.train, model_cfg.input_size, norm, model_cfg.task,
        augment=cfg.data.augment, min_crop=cfg.data.augment_min_crop,
        modality_dropout=tc.modality_dropout, seed=tc.seed,
        dropout_stream=tc.dropout_stream,
    )  # fmt: skip
    val_set = PreparedDataset(splits.val, model_cfg.input_size, norm, model_cfg.task)
    sampler = EpochSampler(len(train_set), tc.batch_size, tc.seed, ctx.rank, ctx.world_size)
    steps_per_epoch = sampler.batches
    total_steps = steps_per_epoch * tc.epochs

    model = build_model(model_cfg)
    init = None
    if tc.init_checkpoint and not resume:  # a resumed run restores its own weights
        init = init_from_checkpoint(model, expand_path(tc.init_checkpoint))
        if show:
            print(
                f"init: {init['tensors_loaded']} tensors from {tc.init_checkpoint} (classes "
                f"{init['classes_carried']}; {len(init['tensors_skipped'])} left as built)"
            )
    model = model.to(ctx.device)
    model.train()
    optimizer = make_optimizer(model, tc.lr, tc.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, tc.warmup_steps, total_steps)
    )
    use_scaler = amp_dtype == torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    params = model.parameter_report()

    epoch, start_batch, global_step = 0, 0, 0
    best = {"metric": -math.inf, "epoch": -1}
    history: list[dict[str, Any]] = []
    # this rank's loss sums of an unfinished epoch (each rank sums its own batches)
    unfinished: dict[str, Any] = {"sums": {}, "batches": 0}
    torch.manual_seed(tc.seed * 1000 + ctx.rank)  # dropout inside the model, per rank
    if resume:
        state = load_train_state(out)
        if state["config"] != cfg_dict:
            changed = sorted(
                f"{sec}.{k}"
                for sec in cfg_dict
                for k in cfg_dict[sec]
                if state["config"].get(sec, {}).get(k) != cfg_dict[sec][k]
            )
            raise ValueError(
                f"--resume: the config differs from the interrupted run's in {changed}"
            )
        _load_model_state(model, {k: v.to(ctx.device) for k, v in state["model"].items()})
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        epoch, start_batch = state["epoch"], state["batch_in_epoch"]
        global_step, best, history = state["global_step"], state["best"], state["history"]
        unfinished = _own_partial(state["partial"], ctx)
        rngs = state["rng"]
        if len(rngs) == ctx.world_size:
            restore_rng(rngs[ctx.rank])
        elif ctx.is_main:
            print(f"resume: {len(rngs)} saved RNG states for {ctx.world_size} ranks; reseeded")
        if ctx.is_main:
            print(f"resume: epoch {epoch + 1}, batch {start_batch}, step {global_step}")

    net: torch.nn.Module = model
    if ctx.distributed:
        net = DistributedDataParallel(
            model,
            device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
            find_unused_parameters=True,
        )

    if ctx.is_main:
        _atomic_write_text(
            out / "config.json",
            json.dumps({"train": cfg_dict, "model": model_cfg.to_dict(), "parameters": params},
                       indent=2, default=str) + "\n",
        )  # fmt: skip
        print(
            f"train: {model_cfg.name} ({model_cfg.task}, mode {model_cfg.mode}) "
            f"{params['trainable']:,} of {params['total']:,} parameters train; "
            f"{len(splits.train)} train / {len(splits.val)} val pairs; "
            f"{steps_per_epoch} steps x {tc.epochs} epochs; world {ctx.world_size}; "
            f"amp {amp_dtype or 'off'}; device {ctx.device}"
        )

    def checkpoint_meta(ep: int, val: dict[str, float]) -> dict[str, Any]:
        return {
            "epoch": ep + 1,
            "global_step": global_step,
            "select_metric": select_name,
            "validation": val,
            "train_config": cfg_dict,
        }

    def save_state(ep: int, batch: int) -> None:
        rngs = capture_rng()
        sums = unfinished if batch else {"sums": {}, "batches": 0}
        all_rngs, all_sums = [rngs], [sums]
        if ctx.distributed:  # every rank's RNG state and loss sums, for an exact resume
            all_rngs, all_sums = [None] * ctx.world_size, [None] * ctx.world_size
            torch.distributed.all_gather_object(all_rngs, rngs)
            torch.distributed.all_gather_object(all_sums, sums)
        if ctx.is_main:
            save_train_state(
                out,
                {
                    "config": cfg_dict,
                    "epoch": ep,
                    "batch_in_epoch": batch,
                    "global_step": global_step,
                    "best": best,
                    "history": history,
                    "model": _model_state(model),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict() if use_scaler else {},
                    "rng": all_rngs,
                    "partial": all_sums,
                },
            )

    autocast = (
        torch.autocast(ctx.device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
    )
    step_times: list[float] = []
    while epoch < tc.epochs:
        sampler.set_epoch(epoch, start_batch)
        train_set.set_epoch(epoch)
        loader = DataLoader(
            train_set, batch_size=tc.batch_size, sampler=sampler, collate_fn=collate,
            num_workers=tc.num_workers, drop_last=False,
            # Worker seeds from (seed, epoch), not from the global RNG that resume restores.
            generator=torch.Generator().manual_seed(tc.seed * 100_003 + epoch),
        )  # fmt: skip
        sums: dict[str, float] = dict(unfinished["sums"]) if start_batch else {}
        n_batches = int(unfinished["batches"]) if start_batch else 0
        t_epoch = time.perf_counter()
        bar = tqdm(
            loader, desc=f"epoch {epoch + 1}/{tc.epochs}", unit="step", disable=not show,
            initial=start_batch, total=steps_per_epoch,
        )  # fmt: skip
        for batch_idx, (rgb, thermal, targets) in enumerate(bar, start=start_batch):
            t0 = time.perf_counter()
            rgb, thermal = rgb.to(ctx.device), thermal.to(ctx.device)
            targets = [
                {k: v.to(ctx.device) if torch.is_tensor(v) else v for k, v in t.items()}
                for t in targets
            ]
            with autocast:
                outputs = net(rgb, thermal)
            loss, parts = model.loss(_to_float(outputs), targets)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss is {loss.item()} at epoch {epoch + 1} step {global_step + 1} "
                    f"({ {k: float(v) for k, v in parts.items()} }); lower train.lr"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if tc.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(
                    [p for p in model.parameters() if p.requires_grad], tc.grad_clip
                )
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            global_step += 1
            step_times.append(time.perf_counter() - t0)
            value = float(loss.detach())
            n_batches += 1
            sums["loss"] = sums.get("loss", 0.0) + value
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            if show:
                bar.set_postfix(loss=f"{value:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            if on_step is not None:
                on_step(global_step, value)
            done = batch_idx + 1
            unfinished = {"sums": sums, "batches": n_batches}
            mid_epoch = done < steps_per_epoch
            if tc.save_every_steps and global_step % tc.save_every_steps == 0 and mid_epoch:
                save_state(epoch, done)
        bar.close()
        start_batch = 0

        # Validation (rank 0), selection on the validation split only.
        train_means = {
            k: dist_utils.mean_across_ranks(ctx, v / max(1, n_batches)) for k, v in sums.items()
        }
        val = None
        if ctx.is_main:
            val = evaluate_model(
                model, val_set, tc.batch_size, tc.val_score_threshold, ctx.device, show
            )
        val = dist_utils.broadcast_object(ctx, val)
        if select_name not in val:
            raise ValueError(
                f"train.select_metric {select_name!r} is not a validation figure; "
                f"choose from {sorted(val)}"
            )
        digest = _check_replicas(ctx, model, epoch)
        score = float(val[select_name])
        improved = score > best["metric"]
        if improved:
            best = {"metric": score, "epoch": epoch}
        record = {
            "epoch": epoch + 1,
            "global_step": global_step,
            "lr": scheduler.get_last_lr()[0],
            "train": train_means,
            "val": val,
            "epoch_s": time.perf_counter() - t_epoch,
            "weights_sha256": digest,
            "best": improved,
        }
        history.append(record)
        if ctx.is_main:
            meta = checkpoint_meta(epoch, val)
            if improved:
                save_checkpoint(out / "best.safetensors", model, meta)
            save_checkpoint(out / "last.safetensors", model, meta)
            with open(out / "train_log.jsonl", "a") as fh:
                fh.write(json.dumps(record, default=str) + "\n")
            print(
                f"epoch {epoch + 1}: loss {train_means.get('loss', float('nan')):.4f}, "
                f"val {select_name} {score:.4f}"
                + (" (best)" if improved else f" (best {best['metric']:.4f})")
            )
        epoch += 1
        save_state(epoch, 0)

    result = TrainResult(
        rank=ctx.rank,
        replica_digest=_check_replicas(ctx, model, epoch - 1),
        run_dir=out,
        best_checkpoint=out / "best.safetensors",
        best_epoch=best["epoch"] + 1,
        best_metric=best["metric"],
        select_metric=select_name,
        history=history,
        test_metrics=None,
        parameters=params,
        step_times_s=step_times,
    )
    if not ctx.is_main:
        return result
    test_metrics = None
    best_path = out / "best.safetensors"
    if splits.test is not None:
        from ivtuning_ros.model.checkpoint import load_checkpoint

        best_model, _ = load_checkpoint(best_path)
        test_set = PreparedDataset(splits.test, model_cfg.input_size, norm, model_cfg.task)
        test_metrics = evaluate_model(
            best_model.to(ctx.device), test_set, tc.batch_size, tc.val_score_threshold,
            ctx.device, show,
        )  # fmt: skip
    summary = {
        "select_metric": select_name,
        "best_epoch": best["epoch"] + 1,
        "validation": history[best["epoch"]]["val"] if history else None,
        "test": test_metrics,
        "parameters": params,
        "init": init,
        "train_pairs": len(splits.train),
        "val_pairs": len(splits.val),
        "test_pairs": len(splits.test) if splits.test is not None else 0,
    }
    _atomic_write_text(out / "metrics.json", json.dumps(summary, indent=2, default=str) + "\n")
    result.test_metrics = test_metrics
    return result


def _to_float(outputs: Any) -> Any:
    """Head outputs back to fp32 after autocast, so losses are computed in full precision."""
    if torch.is_tensor(outputs):
        return outputs.float() if outputs.is_floating_point() else outputs
    if isinstance(outputs, dict):
        return {k: _to_float(v) for k, v in outputs.items()}
    if isinstance(outputs, list | tuple):
        return type(outputs)(_to_float(v) for v in outputs)
    return outputs
