"""Resume state: exact round trip without pickle, clear errors for damaged states."""

import json
import random

import numpy as np
import pytest
import torch

from ivtuning_ros.train.state import (
    STATE_JSON,
    capture_rng,
    load_train_state,
    restore_rng,
    save_train_state,
)


def _trained_optimizer():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10))
    for _ in range(3):
        net(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    return net, opt, sched


def test_round_trip_restores_optimizer_scheduler_and_rng(tmp_path):
    net, opt, sched = _trained_optimizer()
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    state = {
        "global_step": 3,
        "best": {"metric": float("-inf"), "epoch": None},
        "model": dict(net.state_dict()),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": capture_rng(),
    }
    save_train_state(tmp_path, state)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())

    loaded = load_train_state(tmp_path)
    assert loaded["best"] == {"metric": float("-inf"), "epoch": None}
    net2 = torch.nn.Linear(4, 3)
    net2.load_state_dict(loaded["model"])
    opt2 = torch.optim.AdamW(net2.parameters(), lr=1e-2)
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, lambda s: min(1.0, (s + 1) / 10))
    opt2.load_state_dict(loaded["optimizer"])  # after the scheduler, which resets lr
    sched2.load_state_dict(loaded["scheduler"])
    restore_rng(loaded["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected

    # One more identical step on both copies gives identical weights.
    x = torch.randn(5, 4)
    for n, o, s in ((net, opt, sched), (net2, opt2, sched2)):
        n(x).pow(2).mean().backward()
        o.step()
        s.step()
    for a, b in zip(net.parameters(), net2.parameters(), strict=True):
        assert torch.equal(a, b)
    assert sched2.get_last_lr() == sched.get_last_lr()


def test_new_state_replaces_old_tensor_file(tmp_path):
    save_train_state(tmp_path, {"global_step": 1, "w": torch.zeros(2)})
    save_train_state(tmp_path, {"global_step": 2, "w": torch.ones(2)})
    assert [p.name for p in tmp_path.glob("resume-*.safetensors")] == [
        "resume-000000002.safetensors"
    ]
    assert torch.equal(load_train_state(tmp_path)["w"], torch.ones(2))


def test_missing_and_damaged_states_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no resume state"):
        load_train_state(tmp_path)
    save_train_state(tmp_path, {"global_step": 7, "w": torch.zeros(2)})
    (tmp_path / "resume-000000007.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read"):
        load_train_state(tmp_path)
    (tmp_path / "resume-000000007.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        load_train_state(tmp_path)
    (tmp_path / STATE_JSON).write_text("{not json")
    with pytest.raises(ValueError, match="damaged"):
        load_train_state(tmp_path)
    (tmp_path / STATE_JSON).write_text(json.dumps({"format_version": 99, "tensors_file": "x"}))
    with pytest.raises(ValueError, match="format 99"):
        load_train_state(tmp_path)


def test_unstorable_objects_are_refused(tmp_path):
    with pytest.raises(TypeError, match=r"state\.bad"):
        save_train_state(tmp_path, {"bad": object()})
