"""Presets, reference parameter counts, every head on every backbone family, training
modes and configuration errors."""

from __future__ import annotations

import pytest
import torch

from ivtuning_ros.model import ModelConfig, available_presets, build_model, load_model_config
from ivtuning_ros.model.config import model_config_from_dict


def _meta_report(name: str) -> dict:
    with torch.device("meta"):
        return build_model(load_model_config(name)).parameter_report()


def test_every_preset_loads():
    names = available_presets()
    assert "default" in names
    for name in names:
        cfg = load_model_config(name)
        assert isinstance(cfg, ModelConfig) and cfg.name == name


@pytest.mark.parametrize(
    ("preset", "reference"),
    [("eva02_large_reference", 8_899_652), ("swin_large_reference", 6_062_788)],
)
def test_reference_ranks_reproduce_reference_counts(preset, reference):
    report = _meta_report(preset)
    assert abs(report["prompter"] - reference) / reference < 0.005
    assert report["trainable"] == report["prompter"] + report["head"]


def test_vit_base_trainable_share_under_five_percent():
    report = _meta_report("vit_base_reference")
    assert 3.5e6 < report["prompter"] < 3.9e6  # paper: 3.66M
    assert report["trainable_share_of_backbone"] <= 0.05


def _small(backbone: str, task: str, size: tuple[int, int], **extra) -> ModelConfig:
    classes = {"detection": ["a", "b", "c"], "segmentation": ["x", "y"], "saliency": ["s"]}[task]
    return model_config_from_dict(
        {
            "name": f"test_{backbone}_{task}",
            "backbone": backbone,
            "weights": "random",
            "task": task,
            "input_size": list(size),
            "class_names": classes,
            "head": {"width": 16, "topk": 20},
            **extra,
        }
    )


# (backbone, timm arguments shrinking it for speed, prompter ranks); random weights
CASES = [
    (
        "tf_efficientnet_lite0",
        {},
        {"adapter_ranks": [4, 8, 8, 16, 16], "prompt_ranks": 4},
    ),
    ("vit_tiny_patch16_224", {"depth": 4}, {"adapter_ranks": [4, 4, 8, 8], "prompt_ranks": 4}),
    (
        "swin_tiny_patch4_window7_224",
        {"embed_dim": 24, "depths": [1, 1, 2, 1], "num_heads": [1, 2, 3, 6]},
        {"adapter_ranks": 8, "prompt_ranks": 4},
    ),
]


@pytest.mark.parametrize(("backbone", "args", "ranks"), CASES, ids=[c[0] for c in CASES])
def test_each_head_on_each_backbone_family(backbone, args, ranks):
    h, w = size = (64, 96)
    for task in ("detection", "segmentation", "saliency"):
        # the segmentation pass also covers recomputing the frozen layers in backward
        cfg = _small(
            backbone, task, size, prompter=ranks, backbone_args=args,
            grad_checkpointing=task == "segmentation",
        )  # fmt: skip
        model = build_model(cfg)
        rgb, thermal = torch.rand(2, 3, h, w), torch.rand(2, 1, h, w)
        model.train()
        out = model(rgb, thermal)
        if task == "detection":
            targets = [
                {"boxes": torch.tensor([[4.0, 4, 40, 50]]), "labels": torch.tensor([1])},
                {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},
            ]
        elif task == "segmentation":
            mask = torch.randint(0, 2, (h, w))
            mask[:4] = 255
            targets = [{"mask": mask}, {"mask": mask}]
        else:
            targets = [{"saliency": (torch.rand(1, h, w) > 0.5).float()} for _ in range(2)]
        loss, _ = model.loss(out, targets)
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.grad is None for p in model.backbone.parameters())
        assert all(p.grad is not None for p in model.prompter.parameters())
        with torch.no_grad():
            result = model.inference_module()(rgb, thermal)
        if task == "detection":
            boxes, scores, ids = result
            assert boxes.shape == (2, 20, 4) and scores.shape == (2, 20) and ids.shape == (2, 20)
        elif task == "segmentation":
            (ids,) = result
            assert ids.shape == (2, h, w) and ids.dtype == torch.int64 and int(ids.max()) < 2
            assert len(out["seg_logits"].shape) == 4
        else:
            (sal,) = result
            assert sal.shape == (2, 1, h, w) and float(sal.min()) >= 0 and float(sal.max()) <= 1
            assert len(out["side_logits"]) == 4


@pytest.mark.parametrize("task", ["segmentation", "saliency"])
def test_default_backbone_seg_and_saliency_export(task):
    preset = {"segmentation": "efficientnet_lite0_seg", "saliency": "efficientnet_lite0_sod"}[task]
    cfg = load_model_config(preset).replace(input_size=(64, 96))
    module = build_model(cfg).inference_module()
    rgb, thermal = torch.rand(1, 3, 64, 96), torch.rand(1, 1, 64, 96)
    exported = torch.export.export(module, (rgb, thermal))
    with torch.no_grad():
        for a, b in zip(module(rgb, thermal), exported.module()(rgb, thermal), strict=True):
            torch.testing.assert_close(a, b)


def test_lite2_preset_tunes_the_bigger_backbone_with_real_weights():
    """The default layout on Lite2: its wider stages (48..352) get the same five ranks,
    the ImageNet weights load, and the share of trainable weights shrinks."""
    cfg = load_model_config("efficientnet_lite2_det").replace(input_size=(64, 96))
    model = build_model(cfg)
    assert model.weights_source.startswith("package:efficientnet_lite2")
    report = model.parameter_report()
    default = _meta_report("default")
    assert report["backbone_params"] > 1.3 * default["backbone_params"]
    assert report["trainable_share_of_backbone"] < default["trainable_share_of_backbone"]
    with torch.no_grad():
        out = model.eval()(torch.rand(1, 3, 64, 96), torch.rand(1, 1, 64, 96))
    assert torch.isfinite(out["cls_logits"]).all()


def test_training_modes_freeze_the_right_parts():
    base = load_model_config("default").replace(input_size=(64, 96))
    rgb, thermal = torch.rand(1, 3, 64, 96), torch.rand(1, 1, 64, 96)
    counts = {}
    for mode in ("ivtuning", "full", "rgb_only", "thermal_only", "dual_backbone"):
        model = build_model(base.replace(mode=mode))
        report = model.parameter_report()
        counts[mode] = report
        backbone_trainable = any(p.requires_grad for p in model.backbone.parameters())
        assert backbone_trainable == (mode in ("full", "dual_backbone")), mode
        assert (model.prompter is not None) == (mode in ("ivtuning", "full")), mode
        with torch.no_grad():
            out = model.eval()(rgb, thermal)
        assert out["boxes"].shape[0] == 1
    assert counts["rgb_only"]["trainable"] == counts["rgb_only"]["head"]
    assert counts["dual_backbone"]["backbone_params"] == 2 * counts["rgb_only"]["backbone_params"]
    assert counts["full"]["trainable"] == counts["full"]["total"]
    # rgb_only ignores the thermal image, thermal_only the RGB image
    model = build_model(base.replace(mode="rgb_only")).eval()
    with torch.no_grad():
        a = model(rgb, thermal)["cls_logits"]
        b = model(rgb, torch.rand(1, 1, 64, 96))["cls_logits"]
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mode", ["full", "dual_backbone"])
def test_full_modes_can_keep_the_pretrained_bn_statistics(mode):
    base = load_model_config("default").replace(input_size=(64, 96), mode=mode)
    rgb, thermal = torch.rand(2, 3, 64, 96), torch.rand(2, 1, 64, 96)
    for freeze in (False, True):
        model = build_model(base.replace(freeze_backbone_bn=freeze)).train()
        bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        backbone_bns = [
            m
            for b in (model.backbone, model.thermal_backbone)
            if b is not None
            for m in b.modules()
            if isinstance(m, torch.nn.BatchNorm2d)
        ]
        before = [m.running_mean.clone() for m in backbone_bns]
        model(rgb, thermal)
        unchanged = [
            torch.equal(a, m.running_mean) for a, m in zip(before, backbone_bns, strict=True)
        ]
        assert all(unchanged) == freeze, (mode, freeze)  # (timm's unused head BN never moves)
        # the weights still train, and the head's own BN keeps training mode
        assert all(p.requires_grad for p in model.backbone.parameters())
        assert any(m.training for m in bns if m not in backbone_bns)
    with pytest.raises(ValueError, match=r"freeze_backbone_bn.*true or false"):
        base.replace(freeze_backbone_bn="yes")


def test_config_errors_name_the_key(tmp_path):
    good = tmp_path / "ok.yaml"
    good.write_text(
        "backbone: tf_efficientnet_lite0\nweights: random\ntask: detection\nclass_names: [a]\n"
    )
    assert load_model_config(good).name == "ok"
    base = "backbone: x\nweights: random\ntask: detection\nclass_names: [a]\n"
    cases = {
        base + "bogus: 1\n": "bogus",
        base.replace("backbone: x\n", ""): "backbone",
        base.replace("task: detection", "task: detect"): "'task'",
        base + "input_size: [250, 320]\n": "input_size",
        base + "prompter: {rank: 3}\n": "prompter.rank",
        base + "head: {width: wide}\n": "head.width",
        base + "mode: half\n": "'mode'",
    }
    for i, (text, key) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.yaml"
        path.write_text(text)
        with pytest.raises(ValueError, match=key):
            load_model_config(path)
    with pytest.raises(FileNotFoundError, match="presets"):
        load_model_config("no_such_preset")
    cfg = load_model_config("default").replace(prompter={"adapter_ranks": [4, 8]})
    with pytest.raises(ValueError, match=r"adapter_ranks.*5 tuned layers"):
        build_model(cfg)


def test_unknown_backbone_and_missing_weights(tmp_path):
    cfg = load_model_config("default")
    with pytest.raises(ValueError, match=r"unknown backbone 'vit_smal_patch16_224'.*vit_small"):
        build_model(cfg.replace(backbone="vit_smal_patch16_224", weights="random"))
    with pytest.raises(ValueError, match=r"supported families"):
        build_model(cfg.replace(backbone="resnet50", weights="random"))
    (tmp_path / "other.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"missing\.pth.*other\.safetensors"):
        build_model(cfg.replace(weights=str(tmp_path / "missing.pth")))
    with pytest.raises(ValueError, match="unknown package"):
        build_model(cfg.replace(weights="package:resnet9000"))
    # PyPI ships Lite0-2 weights only: no advice to pip-install a package that is not there
    with pytest.raises(ValueError, match=r"unknown package.*package:efficientnet_lite2'\]"):
        build_model(cfg.replace(weights="package:efficientnet_lite4"))


def test_weights_file_round_trip(tmp_path):
    """A local safetensors file of the backbone loads; one of another model is refused."""
    from safetensors.torch import save_file

    cfg = _small("vit_tiny_patch16_224", "detection", (64, 96), backbone_args={"depth": 2})
    source = build_model(cfg)
    state = {k: v.contiguous() for k, v in source.backbone.net.state_dict().items()}
    save_file(state, str(tmp_path / "vit_tiny.safetensors"))
    loaded = build_model(cfg.replace(weights=str(tmp_path / "vit_tiny.safetensors"), seed=5))
    torch.testing.assert_close(
        loaded.backbone.net.blocks[0].attn.qkv.weight, source.backbone.net.blocks[0].attn.qkv.weight
    )
    wrong = _small("vit_tiny_patch16_224", "detection", (64, 96), backbone_args={"depth": 3})
    with pytest.raises(ValueError, match="does not match the backbone"):
        build_model(wrong.replace(weights=str(tmp_path / "vit_tiny.safetensors")))


def test_bad_targets_are_named():
    cfg = _small("vit_tiny_patch16_224", "detection", (64, 96), backbone_args={"depth": 1})
    model = build_model(cfg)
    out = model(torch.rand(1, 3, 64, 96), torch.rand(1, 1, 64, 96))
    with pytest.raises(ValueError, match=r"labels \[7\] outside 0..2"):
        model.loss(out, [{"boxes": torch.tensor([[1.0, 1, 9, 9]]), "labels": torch.tensor([7])}])
    with pytest.raises(ValueError, match=r"must be \(N, 4\)"):
        model.loss(out, [{"boxes": torch.zeros(2, 5), "labels": torch.zeros(2).long()}])
    seg = build_model(cfg.replace(task="segmentation", class_names=["a", "b"]))
    out = seg(torch.rand(1, 3, 64, 96), torch.rand(1, 1, 64, 96))
    mask = torch.zeros(64, 96, dtype=torch.long)
    mask[0, 0] = 5
    with pytest.raises(ValueError, match=r"class ids \[5\] outside 0..1"):
        seg.loss(out, [{"mask": mask}])


def test_hybrid_conv_matches_the_split_formulation():
    """The fused depthwise form equals split -> partial conv -> concat -> + residual."""
    import torch.nn.functional as F

    from ivtuning_ros.model.prompter import HybridConv

    for rank in (4, 8, 64):
        hc = HybridConv(rank).eval()
        torch.nn.init.normal_(hc.partial.weight)
        torch.nn.init.normal_(hc.partial.bias)
        x = torch.randn(2, rank, 9, 11)
        n = hc.n_part
        y = torch.cat([hc.partial(x[:, :n]), x[:, n:]], dim=1) + x
        expected = hc.proj2(F.relu(hc.bn(hc.proj1(y)))) + y
        torch.testing.assert_close(hc(x), expected, atol=1e-5, rtol=1e-5)


def test_primary_modality_decides_which_camera_the_backbone_sees():
    """primary_modality: thermal feeds the thermal image to the frozen backbone and the
    visible image to the prompter as luminance: two RGB images of equal luminance give
    the same output, while any change of the thermal image shows."""
    from ivtuning_ros.model.ivtuning import luminance

    def out(m, rgb, thermal):
        return m(rgb, thermal)["side_logits"][0]

    h, w = size = (64, 96)
    case = CASES[0]
    cfg = _small(case[0], "saliency", size, prompter=case[2], primary_modality="thermal")
    model = build_model(cfg).eval()
    torch.manual_seed(0)
    rgb = 0.3 + 0.4 * torch.rand(1, 3, h, w)
    # a colour shift that leaves BT.601 luma unchanged: (0.114, 0, -0.299) . weights = 0
    shifted = rgb + 0.2 * torch.tensor([0.114, 0.0, -0.299]).view(1, 3, 1, 1)
    assert torch.allclose(luminance(rgb), luminance(shifted), atol=1e-6)
    thermal = torch.rand(1, 1, h, w)
    with torch.no_grad():
        base = out(model, rgb, thermal)
        assert torch.allclose(out(model, shifted, thermal), base, atol=1e-5)
        assert not torch.allclose(out(model, rgb, thermal.flip(-1)), base, atol=1e-3)
        # the paper's layout: the same colour shift reaches the backbone
        rgb_primary = build_model(cfg.replace(primary_modality="rgb")).eval()
        a, b = out(rgb_primary, rgb, thermal), out(rgb_primary, shifted, thermal)
        assert not torch.allclose(a, b, atol=1e-4)
    assert luminance(torch.ones(1, 3, 2, 2)).shape == (1, 1, 2, 2)
    assert torch.allclose(luminance(torch.ones(1, 3, 2, 2)), torch.ones(1, 1, 2, 2))
    with pytest.raises(ValueError, match="primary_modality"):
        cfg.replace(primary_modality="infrared")


@pytest.mark.parametrize(
    ("mode", "primary", "standalone"),
    [
        ("ivtuning", "thermal", ("thermal",)),
        ("ivtuning", "rgb", ("rgb",)),
        ("full", "thermal", ("thermal",)),
        ("rgb_only", "thermal", ("rgb",)),
        ("thermal_only", "rgb", ("thermal",)),
        ("dual_backbone", "rgb", ("rgb", "thermal")),
    ],
)
def test_standalone_cameras_follow_what_the_model_sees(mode, primary, standalone):
    """The node's on_timeout degraded_auto runs lone frames of these cameras only: a
    prompted model needs its backbone's camera, a single-camera model its own."""
    cfg = _small(CASES[0][0], "detection", (64, 96), mode=mode, primary_modality=primary)
    assert cfg.standalone_cameras == standalone
