"""EngineCache: key changes rebuild with the reason, corrupt artifacts are never loaded,
writes are atomic and a second process waits for the first one's build."""

import hashlib
import json
import multiprocessing as mp
import time
from pathlib import Path

import pytest

from ivtuning_ros.engine.cache import CacheKey, EngineCache

PARTS = {"checkpoint_sha256": "a" * 64, "precision": "fp32", "version_torch": "2.14.1"}


class Recorder:
    """A real build/load pair over small files, counting what happened."""

    def __init__(self, payload: bytes = b"engine-bytes" * 100) -> None:
        self.payload = payload
        self.builds = 0
        self.loads = 0
        self.lines: list[str] = []

    def build(self, tmp: Path) -> dict:
        self.builds += 1
        tmp.write_bytes(self.payload)
        return {"engine": {"task": "detection"}}

    def load(self, artifact: Path) -> bytes:
        data = artifact.read_bytes()
        if not data.startswith(b"engine-bytes"):
            raise ValueError("not an engine")
        self.loads += 1
        return data

    def get(self, cache_dir: Path, parts=PARTS):
        cache = EngineCache(cache_dir, "slot", self.lines.append)
        return cache.get_or_build(CacheKey(dict(parts)), "model.bin", self.build, self.load)


def test_first_build_then_cache_hit(tmp_path):
    rec = Recorder()
    first = rec.get(tmp_path)
    assert first.built and "no cached engine" in first.reason
    second = rec.get(tmp_path)
    assert not second.built and second.reason == "cache hit"
    assert rec.builds == 1 and second.value == rec.payload
    manifest = json.loads((tmp_path / "slot" / "manifest.json").read_text())
    assert manifest["key_parts"] == PARTS and manifest["info"]["engine"]["task"] == "detection"
    assert manifest["size"] == len(rec.payload)
    # Nothing temporary is left behind.
    assert sorted(p.name for p in (tmp_path / "slot").iterdir()) == [
        ".lock", "manifest.json", "model.bin",
    ]  # fmt: skip


def test_changed_key_rebuilds_and_names_the_changed_part(tmp_path):
    rec = Recorder()
    rec.get(tmp_path)
    result = rec.get(tmp_path, {**PARTS, "version_torch": "2.15.0"})
    assert result.built and rec.builds == 2
    assert "version_torch: 2.14.1 -> 2.15.0" in result.reason
    assert "checkpoint" not in result.reason
    assert any("version_torch" in line for line in rec.lines)


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "garbage"])
def test_corrupt_artifact_is_detected_deleted_and_rebuilt(tmp_path, damage):
    rec = Recorder()
    artifact = rec.get(tmp_path).artifact
    data = artifact.read_bytes()
    if damage == "truncate":
        artifact.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        artifact.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif damage == "delete":
        artifact.unlink()
    loads_before = rec.loads
    if damage == "garbage":
        # Bytes and manifest agree but the file does not load (say, written by another
        # library version): the load failure is what catches it.
        artifact.write_bytes(b"not-an-engine")
        manifest_path = tmp_path / "slot" / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest.update(
            size=len(b"not-an-engine"), sha256=hashlib.sha256(b"not-an-engine").hexdigest()
        )
        manifest_path.write_text(json.dumps(manifest))
        result = rec.get(tmp_path)
        assert "failed to load" in result.reason
    else:
        result = rec.get(tmp_path)
        assert "corrupt artifact" in result.reason
        assert rec.loads == loads_before + 1  # the damaged file was never handed to load
    assert result.built and result.value == rec.payload
    assert any("corrupt artifact" in line for line in rec.lines)


def test_garbage_manifest_and_failed_build_leave_no_artifact(tmp_path):
    rec = Recorder()
    rec.get(tmp_path)
    (tmp_path / "slot" / "manifest.json").write_text("{not json")
    assert rec.get(tmp_path).built  # unreadable manifest: rebuilt

    def failing_build(tmp: Path) -> dict:
        tmp.write_bytes(b"half")
        raise RuntimeError("exporter crashed")

    cache = EngineCache(tmp_path, "slot", rec.lines.append)
    with pytest.raises(RuntimeError, match="exporter crashed"):
        cache.get_or_build(CacheKey({"other": "key"}), "model.bin", failing_build, rec.load)
    names = sorted(p.name for p in (tmp_path / "slot").iterdir())
    assert "manifest.json" not in names  # no manifest vouches for the old bytes any more
    assert not [n for n in names if "tmp" in n]
    assert rec.get(tmp_path).built  # and the next call rebuilds


def _slow_build_in_child(cache_dir: str, out: str) -> None:
    def build(tmp: Path) -> dict:
        time.sleep(1.0)
        tmp.write_bytes(b"engine-bytes-child")
        return {}

    result = EngineCache(cache_dir, "slot", print).get_or_build(
        CacheKey(dict(PARTS)), "model.bin", build, lambda p: p.read_bytes()
    )
    Path(out).write_text(str(result.built))


def test_second_process_waits_for_the_first_build(tmp_path):
    ctx = mp.get_context("spawn")
    child = ctx.Process(target=_slow_build_in_child, args=(str(tmp_path), str(tmp_path / "out")))
    child.start()
    deadline = time.time() + 30
    while not (tmp_path / "slot" / ".lock").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the child holds the lock and is building
    rec = Recorder()
    result = rec.get(tmp_path)
    child.join(30)
    assert (tmp_path / "out").read_text() == "True"
    assert not result.built and rec.builds == 0  # it used the child's artifact
    assert result.value == b"engine-bytes-child"
    assert any("another process is building" in line for line in rec.lines)
