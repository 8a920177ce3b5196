"""`load_engine`: checkpoint + EngineConfig -> a warmed-up Engine, built or taken from cache.

The choice of backend is logged with its reason; a compiled artifact is built once and
cached (see cache.py), with "please wait" progress lines during the build; the engine
runs `warmup_runs` passes before it is returned, so the first real frame is not slow.
"""

from __future__ import annotations

import platform
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ivtuning_ros.engine.backends.base import Backend
from ivtuning_ros.engine.cache import CacheKey, EngineCache, file_sha256, text_sha256
from ivtuning_ros.engine.config import EngineConfig
from ivtuning_ros.preprocess import ThermalNorm
from ivtuning_ros.tasks import get_task
from ivtuning_ros.types import CAMERAS

Log = Callable[[str], None]
# Bump when the export path changes what an artifact contains: old artifacts rebuild.
ENGINE_FORMAT = "2"


@dataclass(frozen=True)
class EngineInfo:
    """What users of an engine need to feed it and read its outputs."""

    task: str
    class_names: tuple[str, ...]
    input_hw: tuple[int, int]
    thermal_norm: ThermalNorm
    score_threshold: float | None = None  # the checkpoint's validated operating point
    # cameras whose lone frames the model still runs on (ModelConfig.standalone_cameras)
    standalone_cameras: tuple[str, ...] = CAMERAS

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Engine:
    """A ready backend plus the metadata of the checkpoint it was built from."""

    def __init__(
        self,
        backend: Backend,
        info: EngineInfo,
        key: str,
        artifact: Path | None,
        built: bool,
        reason: str,
    ) -> None:
        self.backend = backend
        self.info = info
        self.key = key
        self.artifact = artifact
        self.built = built  # False when the artifact came from the cache
        self.reason = reason
        self.warmup_s: list[float] = []

    task = property(lambda self: self.info.task)
    class_names = property(lambda self: self.info.class_names)
    input_hw = property(lambda self: self.info.input_hw)
    thermal_norm = property(lambda self: self.info.thermal_norm)
    backend_name = property(lambda self: self.backend.name)

    def run(self, rgb_batch: np.ndarray, thermal_batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """(B,3,H,W) + (B,1,H,W) float32 in [0, 1] -> the inference-module outputs."""
        return self.backend.run(rgb_batch, thermal_batch)

    def warmup(self, runs: int) -> list[float]:
        """Run neutral inputs `runs` times (first runs allocate, tune and compile)."""
        h, w = self.input_hw
        rgb = np.full((1, 3, h, w), 0.5, np.float32)
        thermal = np.full((1, 1, h, w), 0.5, np.float32)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            self.run(rgb, thermal)
            times.append(time.perf_counter() - t0)
        self.warmup_s = times
        return times

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def choose_backend(cfg: EngineConfig, device: str) -> tuple[str, str]:
    """The backend to use and why (auto: tensorrt > onnxruntime > torch)."""
    if cfg.backend != "auto":
        return cfg.backend, "asked for in the config"
    from ivtuning_ros.engine.backends import tensorrt

    ok, why_not = tensorrt.available()
    if ok and device.startswith("cuda"):
        return "tensorrt", "auto: torch_tensorrt importable and a CUDA device in use"
    reason = why_not if not ok else f"device is {device}"
    try:
        import onnxruntime  # noqa: F401
    except ImportError as err:
        return "torch", f"auto: no tensorrt ({reason}) and no onnxruntime ({err})"
    return "onnxruntime", f"auto: no tensorrt ({reason})"


def faster_cpu_hint(cfg: EngineConfig, backend: str, device: str) -> str | None:
    """A note for a user on ONNX Runtime fp32 on a CPU: OpenVINO bf16 (where the CPU has
    bf16 arithmetic) or int8 ran 1.6-1.8x faster, kept opt-in because they change the numbers
    slightly (and int8 needs calibration pairs)."""
    if backend != "onnxruntime" or cfg.precision != "fp32" or device != "cpu":
        return None
    try:
        from ivtuning_ros.engine.backends import openvino
    except ImportError:
        return None
    if openvino.has_bf16():
        return (
            "engine: hint: this CPU has bf16 arithmetic: backend openvino with precision bf16 "
            "ran the default model 1.6-1.8x faster than onnxruntime fp32, mAP50 unchanged "
            "(docs/benchmarks.md)"
        )
    return (
        "engine: hint: backend openvino with precision int8 and int8_calibration_dir (a few "
        "dozen registered pairs from your cameras) ran the default model 1.6-1.75x faster than "
        "onnxruntime fp32, mAP50 unchanged on real test pairs (docs/benchmarks.md)"
    )


def device_name(device: str) -> str:
    """A name that changes when the hardware an artifact was tuned for changes."""
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":")[1]) if ":" in device else 0
        cap = torch.cuda.get_device_capability(index)
        return f"{torch.cuda.get_device_name(index)} sm_{cap[0]}{cap[1]}"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@contextmanager
def build_progress(log: Log, what: str, every_s: float = 10.0) -> Iterator[None]:
    """Log a start line, a heartbeat every `every_s` seconds, and the elapsed time."""
    t0 = time.perf_counter()
    done = threading.Event()
    log(f"building {what} ... please wait (this happens once per checkpoint and machine)")

    def beat() -> None:
        while not done.wait(every_s):
            log(f"  still building {what}: {time.perf_counter() - t0:.0f} s elapsed")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
    log(f"built {what} in {time.perf_counter() - t0:.1f} s")


def _checkpoint_facts(path: Path) -> tuple[EngineInfo, dict[str, str]]:
    """Engine metadata and key parts read from the checkpoint without building the model."""
    from ivtuning_ros.model.checkpoint import read_checkpoint_info

    info = read_checkpoint_info(path)
    cfg = info.config
    engine_info = EngineInfo(
        task=cfg.task,
        class_names=tuple(cfg.class_names),
        input_hw=(int(cfg.input_size[0]), int(cfg.input_size[1])),
        thermal_norm=info.thermal_norm,
        score_threshold=info.score_threshold,
        standalone_cameras=cfg.standalone_cameras,
    )
    parts = {
        "backbone_hash": info.frozen_hash,
        "model_config": text_sha256(cfg.to_json()),
    }
    return engine_info, parts


def verify_against_module(
    backend: Backend, module: Any, info: EngineInfo, precision: str, device: str
) -> float:
    """Run a fixed random pair through the new artifact and the torch module; raise if
    they disagree, so a broken export is never cached. Returns the error measured.

    Each task says how (tasks/*.py `verify_error`): detection compares the sorted top-K
    scores, segmentation the share of differing class ids, saliency the maps themselves.
    """
    import torch

    h, w = info.input_hw
    rng = np.random.default_rng(0)
    rgb = rng.random((1, 3, h, w), dtype=np.float32)
    thermal = rng.random((1, 1, h, w), dtype=np.float32)
    with torch.no_grad():
        module = module.to(device)
        want = [
            o.float().cpu().numpy() if o.is_floating_point() else o.cpu().numpy()
            for o in module(torch.from_numpy(rgb).to(device), torch.from_numpy(thermal).to(device))
        ]
    got = backend.run(rgb, thermal)
    error, limit = get_task(info.task).verify_error(got, want, precision)
    if not error <= limit:
        raise RuntimeError(
            f"the {backend.name} {precision} engine disagrees with torch eager: error "
            f"{error:.3g} > {limit:g} ({info.task}); not caching it"
        )
    return error


def _inference_module(path: Path):
    from ivtuning_ros.model.checkpoint import load_checkpoint

    model, _ = load_checkpoint(path)
    return model.inference_module().eval()


def load_engine(
    checkpoint_path: str | Path,
    cfg: EngineConfig | None = None,
    log: Log = print,
    warn: Log | None = None,
) -> Engine:
    """Build (or fetch from cache) and warm up the engine for a checkpoint; `warn`
    receives what someone should know although it was handled (a healed cache)."""
    cfg = cfg or EngineConfig()
    path = Path(checkpoint_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    device = cfg.resolved_device()
    backend, why = choose_backend(cfg, device)
    log(f"engine: backend {backend} on {device} at {cfg.precision} ({why})")
    backend_module = _backend_module(backend)
    backend_module.check(cfg.precision, device)  # before any work: a clear reason or hint
    if (hint := faster_cpu_hint(cfg, backend, device)) is not None:
        log(hint)
    info, parts = _checkpoint_facts(path)
    parts = {
        "engine_format": ENGINE_FORMAT,
        "backend": backend,
        "precision": cfg.precision,
        "input_shape": "rgb 1x3x{0}x{1}, thermal 1x1x{0}x{1}".format(*info.input_hw),
        "checkpoint_sha256": file_sha256(path),
        **parts,
        **{f"version_{k}": v for k, v in backend_module.library_versions().items()},
        "device": device_name(device),
    }
    if cfg.precision == "int8":
        from ivtuning_ros.engine.calibration import calibration_fingerprint

        parts["calibration"] = text_sha256(
            calibration_fingerprint(cfg.calibration_dir, cfg.calibration_images)
        )
        parts["quantization"] = backend_module.QUANTIZATION_RECIPE
    key = CacheKey(parts)

    if not backend_module.COMPILED:
        runner = backend_module.create(_inference_module(path), info.input_hw, device, cfg, log)
        engine = Engine(runner, info, key.digest, None, True, f"{backend} runs the module")
    else:
        engine = _cached_engine(path, cfg, backend, device, info, key, log, warn)
    if cfg.warmup_runs:
        times = engine.warmup(cfg.warmup_runs)
        log(
            f"engine: warm-up {len(times)} runs, first {times[0] * 1e3:.1f} ms, "
            f"last {times[-1] * 1e3:.1f} ms"
        )
    log(f"engine: ready ({engine.backend_name}, {engine.task}, input {info.input_hw})")
    return engine


def _backend_module(backend: str):
    import importlib

    return importlib.import_module(f"ivtuning_ros.engine.backends.{_MODULES[backend]}")


# Backends by name: each module has check(precision, device), library_versions() and
# COMPILED; a compiled one also ARTIFACT, build_artifact(...) and load(...), which the
# engine cache calls; an uncompiled one create(module, input_hw, device, cfg, log). A new
# backend is one module here and one line below.
_MODULES = {
    "tensorrt": "tensorrt",
    "onnxruntime": "onnxruntime",
    "openvino": "openvino",
    "torch": "torch_eager",
}


def _cached_engine(
    path: Path,
    cfg: EngineConfig,
    backend: str,
    device: str,
    info: EngineInfo,
    key: CacheKey,
    log: Log,
    warn: Log | None = None,
) -> Engine:
    mod = _backend_module(backend)
    slot = f"{path.stem}-{text_sha256(str(path.resolve()))[:8]}-{backend}-{cfg.precision}"
    cache = EngineCache(cfg.cache_dir, slot, log, warn)

    def build(tmp: Path) -> dict[str, Any]:
        with build_progress(log, f"{backend} {cfg.precision} engine for {path.name}"):
            module = _inference_module(path)
            batches = None
            if cfg.precision == "int8":
                from ivtuning_ros.engine.calibration import calibration_batches

                batches = list(
                    calibration_batches(
                        cfg.calibration_dir,
                        info.input_hw,
                        info.thermal_norm,
                        cfg.calibration_images,
                    )
                )
            mod.build_artifact(module, info.input_hw, tmp, cfg.precision, device, batches)
            backend_obj = load(tmp)
            try:
                error = verify_against_module(backend_obj, module, info, cfg.precision, device)
            finally:
                backend_obj.close()
        log(f"engine: {backend} output matches torch eager (max error {error:.2e})")
        return {"engine": info.to_json(), "checkpoint": str(path), "max_error": error}

    def load(artifact: Path) -> Backend:
        return mod.load(artifact, info.input_hw, cfg.precision, cfg.num_threads, device)

    result = cache.get_or_build(key, mod.ARTIFACT, build, load)
    if not result.built:
        log(f"engine: cache hit {result.artifact} (key {key.digest})")
    else:
        log(f"engine: cached {result.artifact} (key {key.digest})")
    return Engine(result.value, info, key.digest, result.artifact, result.built, result.reason)
