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

import torch
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import ConcatDataset, DataLoader, Sampler
from tqdm import tqdm

from ivtuning_ros.data.classes import Relabeled, match_classes
from ivtuning_ros.data.dataset import PreparedDataset, collate
from ivtuning_ros.data.real import expand_path
from ivtuning_ros.model import IVTuningModel, ModelConfig, build_model
from ivtuning_ros.model.checkpoint import (
    init_from_checkpoint,
    load_checkpoint,
    trainable_state_dict,
    upgrade_keys,
)
from ivtuning_ros.tasks import DecodeOptions, get_task
from ivtuning_ros.train import distributed as dist_utils
from ivtuning_ros.train.checkpoints import CheckpointKeeper, atomic_write_text
from ivtuning_ros.train.config import TrainConfig, TrainSection, config_to_dict
from ivtuning_ros.train.data import Splits, build_splits
from ivtuning_ros.train.state import (
    RunState,
    capture_rng,
    load_train_state,
    restore_rng,
    save_train_state,
)

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
    state = upgrade_keys(state)
    expected = set(trainable_state_dict(model))
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(
            f"--resume: saved weights do not fit the model (missing {missing[:5]}, "
            f"unexpected {extra[:5]}); was the config changed?"
        )
    model.load_state_dict(state, strict=False)


@torch.no_grad()
def validate(
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
    task = get_task(cfg.task)
    infer = model.inference_module()
    metric = task.metric(cfg.class_names)
    options = DecodeOptions(score_threshold)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(0),  # leaves the global RNG untouched
    )
    for rgb, thermal, targets in tqdm(loader, desc="validate", leave=False, disable=not progress):
        outputs = [o.float().cpu().numpy() for o in infer(rgb.to(device), thermal.to(device))]
        for i, tgt in enumerate(targets):
            decoded = task.decode([o[i] for o in outputs], tgt["letterbox"], options)
            task.score_target(metric, decoded, tgt)
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
    matching = get_task(task).class_matching
    if matching != "by_name":
        if matching == "exact" and tuple(data_names[task]) != tuple(model_cfg.class_names):
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


@dataclass
class Optimisation:
    """The model and everything that steps it; `net` is `model`, or its DDP wrapper."""

    model: IVTuningModel
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    grad_clip: float
    ema: ModelEmaV3 | None = None

    @property
    def kept_model(self) -> IVTuningModel:
        """The weights validated and saved: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def autocast(self, device: torch.device) -> Any:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device.type, dtype=self.amp_dtype)

    def step(self, loss: torch.Tensor, global_step: int) -> None:
        """One optimizer step; `global_step` counts it (from 1) for the EMA's warm-up."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad], self.grad_clip
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model, step=global_step)

    def state_dict(self) -> dict[str, Any]:
        saved = {
            "model": trainable_state_dict(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
        }
        if self.ema is not None:
            saved["ema"] = trainable_state_dict(self.ema.module)
        return saved

    def load_state_dict(self, saved: dict[str, Any], device: torch.device) -> None:
        _load_model_state(self.model, {k: v.to(device) for k, v in saved["model"].items()})
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        if saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        if self.ema is not None:
            ema = {k: v.to(device) for k, v in saved["ema"].items()}
            _load_model_state(self.ema.module, ema)


def build_optimisation(
    model: IVTuningModel, tc: TrainSection, total_steps: int, ctx: dist_utils.DistContext
) -> Optimisation:
    """AdamW, warm-up + cosine schedule, the fp16 loss scaler and DDP around `model`."""
    amp_dtype = resolve_amp(tc.amp, ctx.device)
    optimizer = make_optimizer(model, tc.lr, tc.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, tc.warmup_steps, total_steps)
    )
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    net: torch.nn.Module = model
    if ctx.distributed:
        net = DistributedDataParallel(
            model,
            device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
            find_unused_parameters=True,
        )
    ema = ModelEmaV3(model, decay=tc.ema_decay, use_warmup=True) if tc.ema_decay else None
    return Optimisation(model, net, optimizer, scheduler, scaler, amp_dtype, tc.grad_clip, ema)


def train_one_epoch(
    opt: Optimisation,
    loader: DataLoader,
    state: RunState,
    steps_per_epoch: int,
    device: torch.device,
    on_step: StepHook | None = None,
    save_every_steps: int = 0,
    save_point: Callable[[], None] | None = None,
    show: bool = False,
    step_times: list[float] | None = None,
) -> None:
    """Train epoch `state.epoch` from batch `state.batch_in_epoch` to its end, summing
    this rank's losses into `state` and calling `save_point` every `save_every_steps`."""
    bar = tqdm(
        loader,
        desc=f"epoch {state.epoch + 1}",
        unit="step",
        disable=not show,
        initial=state.batch_in_epoch,
        total=steps_per_epoch,
    )
    autocast = opt.autocast(device)
    for rgb, thermal, targets in bar:
        t0 = time.perf_counter()
        rgb, thermal = rgb.to(device), thermal.to(device)
        targets = [
            {k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets
        ]
        with autocast:
            outputs = opt.net(rgb, thermal)
        loss, parts = opt.model.loss(_to_float(outputs), targets)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss is {loss.item()} at epoch {state.epoch + 1} step {state.global_step + 1} "
                f"({ {k: float(v) for k, v in parts.items()} }); lower train.lr"
            )
        state.global_step += 1
        opt.step(loss, state.global_step)
        state.batch_in_epoch += 1
        if step_times is not None:
            step_times.append(time.perf_counter() - t0)
        value = float(loss.detach())
        state.add_loss({"loss": value, **{k: float(v) for k, v in parts.items()}})
        if show:
            bar.set_postfix(loss=f"{value:.3f}", lr=f"{opt.scheduler.get_last_lr()[0]:.2e}")
        if on_step is not None:
            on_step(state.global_step, value)
        due = save_every_steps and state.global_step % save_every_steps == 0
        if save_point and due and state.batch_in_epoch < steps_per_epoch:  # not at epoch end
            save_point()
    bar.close()


def _epoch_loader(
    train_set: PreparedDataset, sampler: EpochSampler, tc: TrainSection, state: RunState
) -> DataLoader:
    sampler.set_epoch(state.epoch, state.batch_in_epoch)
    train_set.set_epoch(state.epoch)
    return DataLoader(
        train_set,
        batch_size=tc.batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=tc.num_workers,
        drop_last=False,
        # Worker seeds from (seed, epoch), not from the global RNG that resume restores.
        generator=torch.Generator().manual_seed(tc.seed * 100_003 + state.epoch),
    )


def _resume(
    out: Path, cfg_dict: dict[str, Any], opt: Optimisation, ctx: dist_utils.DistContext
) -> RunState:
    """The interrupted run's state, weights, optimizer and this rank's RNG, restored."""
    saved = load_train_state(out)
    if saved["config"] != cfg_dict:
        changed = sorted(
            f"{sec}.{k}"
            for sec in cfg_dict
            for k in cfg_dict[sec]
            if saved["config"].get(sec, {}).get(k) != cfg_dict[sec][k]
        )
        raise ValueError(f"--resume: the config differs from the interrupted run's in {changed}")
    opt.load_state_dict(saved, ctx.device)
    state = RunState.from_saved(saved, _own_partial(saved["partial"], ctx))
    rngs = saved["rng"]
    if len(rngs) == ctx.world_size:
        restore_rng(rngs[ctx.rank])
    elif ctx.is_main:
        print(f"resume: {len(rngs)} saved RNG states for {ctx.world_size} ranks; reseeded")
    if ctx.is_main:
        where = f"epoch {state.epoch + 1}, batch {state.batch_in_epoch}"
        print(f"resume: {where}, step {state.global_step}")
    return state


def _save_resume_point(
    out: Path,
    cfg_dict: dict[str, Any],
    opt: Optimisation,
    state: RunState,
    ctx: dist_utils.DistContext,
) -> None:
    """Every rank's RNG state and loss sums with rank 0's weights: an exact resume."""
    rngs, sums = [capture_rng()], [state.partial()]
    if ctx.distributed:
        rngs, sums = [None] * ctx.world_size, [None] * ctx.world_size
        torch.distributed.all_gather_object(rngs, capture_rng())
        torch.distributed.all_gather_object(sums, state.partial())
    if ctx.is_main:
        saved = {"config": cfg_dict, **state.saved_fields(), **opt.state_dict()}
        save_train_state(out, {**saved, "rng": rngs, "partial": sums})


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


def _prepare_data(
    cfg: TrainConfig, model_cfg: ModelConfig, ctx: dist_utils.DistContext, show: bool
) -> tuple[Splits, PreparedDataset, PreparedDataset]:
    """The splits (classes matched to the model's) and the train / validation datasets;
    rank 0 renders synthetic sources while the other ranks wait, then open them."""
    if ctx.is_main:
        splits = build_splits(cfg.data, render=True, progress=show)
    dist_utils.barrier(ctx)
    if not ctx.is_main:
        splits = build_splits(cfg.data, render=False, progress=False)
    splits = _match_classes(model_cfg, splits)
    tc, size, norm = cfg.train, model_cfg.input_size, model_cfg.thermal_norm
    train_set = PreparedDataset(
        splits.train, size, norm, model_cfg.task,
        augment=cfg.data.augment, min_crop=cfg.data.augment_min_crop,
        max_zoom_out=cfg.data.augment_max_zoom_out,
        modality_dropout=tc.modality_dropout, seed=tc.seed, dropout_stream=tc.dropout_stream,
    )  # fmt: skip
    return splits, train_set, PreparedDataset(splits.val, size, norm, model_cfg.task)


def _prepare_model(
    model_cfg: ModelConfig, tc: TrainSection, resume: bool, show: bool
) -> tuple[IVTuningModel, dict[str, Any] | None]:
    """The model, started from `init_checkpoint` when set (not on resume: a resumed run
    restores its own weights); returns it and what the init took."""
    model = build_model(model_cfg)
    if not tc.init_checkpoint or resume:
        return model, None
    init = init_from_checkpoint(model, expand_path(tc.init_checkpoint))
    if show:
        print(
            f"init: {init['tensors_loaded']} tensors from {tc.init_checkpoint} (classes "
            f"{init['classes_carried']}; {len(init['tensors_skipped'])} left as built)"
        )
    return model, init


def _validate_epoch(
    opt: Optimisation,
    val_set: PreparedDataset,
    state: RunState,
    tc: TrainSection,
    ctx: dist_utils.DistContext,
    show: bool,
    epoch_start: float,
) -> tuple[dict[str, Any], dict[str, float]]:
    """The finished epoch's log record (mean losses over ranks, validation figures of the
    kept weights on rank 0, seconds since `epoch_start`, the replicas' digest) and its
    validation figures."""
    train_means = {
        k: dist_utils.mean_across_ranks(ctx, v / max(1, state.loss_batches))
        for k, v in state.loss_sums.items()
    }
    val = None
    if ctx.is_main:
        kept = opt.kept_model
        val = validate(kept, val_set, tc.batch_size, tc.val_score_threshold, ctx.device, show)
    val = dist_utils.broadcast_object(ctx, val)
    record = {
        "epoch": state.epoch + 1,
        "global_step": state.global_step,
        "lr": opt.scheduler.get_last_lr()[0],
        "train": train_means,
        "val": val,
        "epoch_s": time.perf_counter() - epoch_start,
        "weights_sha256": _check_replicas(ctx, opt.model, state.epoch),
    }
    return record, val


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
    select_name = tc.select_metric or get_task(model_cfg.task).selection_metric
    cfg_dict = config_to_dict(cfg)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if not resume and (out / "resume.json").exists():
            raise ValueError(
                f"{out} already holds a run (resume.json): pass --resume to continue it or "
                "choose another --out"
            )

    splits, train_set, val_set = _prepare_data(cfg, model_cfg, ctx, show)
    sampler = EpochSampler(len(train_set), tc.batch_size, tc.seed, ctx.rank, ctx.world_size)
    steps_per_epoch = sampler.batches
    model, init = _prepare_model(model_cfg, tc, resume, show)
    model = model.to(ctx.device).train()
    opt = build_optimisation(model, tc, steps_per_epoch * tc.epochs, ctx)
    params = model.parameter_report()
    torch.manual_seed(tc.seed * 1000 + ctx.rank)  # dropout inside the model, per rank
    state = _resume(out, cfg_dict, opt, ctx) if resume else RunState()

    if ctx.is_main:
        summary = {"train": cfg_dict, "model": model_cfg.to_dict(), "parameters": params}
        atomic_write_text(out / "config.json", json.dumps(summary, indent=2, default=str) + "\n")
        pairs = f"{len(splits.train)} train / {len(splits.val)} val pairs"
        print(
            f"train: {model_cfg.name} ({model_cfg.task}, mode {model_cfg.mode}) "
            f"{params['trainable']:,} of {params['total']:,} parameters train; {pairs}; "
            f"{steps_per_epoch} steps x {tc.epochs} epochs; world {ctx.world_size}; "
            f"amp {opt.amp_dtype or 'off'}; device {ctx.device}"
        )

    keeper = CheckpointKeeper(out, select_name, cfg_dict, writes=ctx.is_main)
    save_point = partial(_save_resume_point, out, cfg_dict, opt, state, ctx)
    step_times: list[float] = []
    while state.epoch < tc.epochs:
        state.start_epoch()
        t_epoch = time.perf_counter()
        loader = _epoch_loader(train_set, sampler, tc, state)
        train_one_epoch(
            opt, loader, state, steps_per_epoch, ctx.device, on_step,
            tc.save_every_steps, save_point, show, step_times,
        )  # fmt: skip
        record, val = _validate_epoch(opt, val_set, state, tc, ctx, show, t_epoch)
        keeper.end_epoch(opt.kept_model, state, record, val)
        state.epoch, state.batch_in_epoch = state.epoch + 1, 0
        save_point()

    result = TrainResult(
        rank=ctx.rank,
        replica_digest=_check_replicas(ctx, model, state.epoch - 1),
        run_dir=out,
        best_checkpoint=keeper.best_path,
        best_epoch=state.best_epoch + 1,
        best_metric=state.best_metric,
        select_metric=select_name,
        history=state.history,
        test_metrics=None,
        parameters=params,
        step_times_s=step_times,
    )
    if ctx.is_main:
        run_facts = {"parameters": params, "init": init}
        result.test_metrics = _write_metrics(
            keeper, state, splits, model_cfg, tc, run_facts, ctx.device, show
        )
    return result


def _write_metrics(
    keeper: CheckpointKeeper,
    state: RunState,
    splits: Splits,
    model_cfg: ModelConfig,
    tc: TrainSection,
    run_facts: dict[str, Any],
    device: torch.device,
    show: bool,
) -> dict[str, float] | None:
    """Score the best checkpoint on the test split (once, after selection) and write
    metrics.json; returns the test metrics, or None without a test split."""
    test_metrics = None
    if splits.test is not None:
        best_model, _ = load_checkpoint(keeper.best_path)
        test_set = PreparedDataset(
            splits.test, model_cfg.input_size, model_cfg.thermal_norm, model_cfg.task
        )
        test_metrics = validate(
            best_model.to(device), test_set, tc.batch_size, tc.val_score_threshold, device, show
        )
    summary = {
        "select_metric": keeper.select_metric,
        "best_epoch": state.best_epoch + 1,
        "validation": state.history[state.best_epoch]["val"] if state.history else None,
        "test": test_metrics,
        **run_facts,
        "train_pairs": len(splits.train),
        "val_pairs": len(splits.val),
        "test_pairs": len(splits.test) if splits.test is not None else 0,
    }
    text = json.dumps(summary, indent=2, default=str) + "\n"
    atomic_write_text(keeper.out / "metrics.json", text)
    return test_metrics


def _to_float(outputs: Any) -> Any:
    """Head outputs back to fp32 after autocast, so losses are computed in full precision."""
    if torch.is_tensor(outputs):
        return outputs.float() if outputs.is_floating_point() else outputs
    if isinstance(outputs, dict):
        return {k: _to_float(v) for k, v in outputs.items()}
    if isinstance(outputs, list | tuple):
        return type(outputs)(_to_float(v) for v in outputs)
    return outputs
