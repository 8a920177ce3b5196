"""Compiled-engine cache: one slot per (checkpoint, backend, precision), keyed by content.

A slot folder holds the artifact and `manifest.json` (the key parts it was built from,
the artifact's size and sha256, and the engine metadata). An artifact is used only when
its key matches AND its bytes match the manifest AND it loads; otherwise it is deleted and
rebuilt, with one log line saying why (which key parts changed, or what was corrupt).
Artifacts and manifests are written to a temporary file and moved into place with
os.replace, and a file lock keeps two processes from building the same slot at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from filelock import FileLock, Timeout

T = TypeVar("T")
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CacheKey:
    """Named parts of what an artifact depends on; the digest hashes all of them."""

    parts: dict[str, str]

    @property
    def digest(self) -> str:
        return text_sha256(json.dumps(self.parts, sort_keys=True))[:20]

    def changes_from(self, old: dict[str, str]) -> list[str]:
        """Human-readable list of parts that differ from an older key."""
        out = []
        for name in sorted(set(self.parts) | set(old)):
            before, after = old.get(name, "<absent>"), self.parts.get(name, "<absent>")
            if before != after:
                out.append(f"{name}: {_short(before)} -> {_short(after)}")
        return out


def _short(value: str) -> str:
    return value[:12] + "..." if len(value) > 40 else value


@dataclass(frozen=True)
class CacheResult(Generic[T]):
    value: T  # what `load` returned
    artifact: Path
    manifest: dict[str, Any]
    built: bool  # False: a cache hit
    reason: str  # why it was (re)built, or "cache hit"


class EngineCache:
    """One slot folder of the cache: get the artifact for a key, building it if needed."""

    def __init__(
        self,
        root: str | Path,
        slot: str,
        log: Callable[[str], None] = print,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.dir = Path(root).expanduser() / slot
        self.log = log
        # a corrupt artifact is healed, but someone should hear of it at WARN
        self.warn = warn or (lambda message: log(f"WARNING: {message}"))

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST

    def read_manifest(self) -> dict[str, Any] | None:
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            self.log(f"engine cache: unreadable manifest {self.manifest_path} ({err})")
            return None
        return manifest if isinstance(manifest, dict) else None

    def get_or_build(
        self,
        key: CacheKey,
        artifact_name: str,
        build: Callable[[Path], dict[str, Any]],
        load: Callable[[Path], T],
        lock_timeout_s: float = 3600.0,
    ) -> CacheResult[T]:
        """Load the cached artifact for `key`, or build it with `build(tmp_path) -> info`.

        `info` (json-able) is stored in the manifest (e.g. engine metadata) and returned
        with cache hits, so callers need not rebuild anything to describe the engine.
        """
        created = [p for p in (self.dir, self.dir.parent) if not p.exists()]
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.dir / ".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            self.log(f"engine cache: another process is building {self.dir}; waiting for it")
            lock.acquire(timeout=lock_timeout_s)
        try:
            return self._get_or_build_locked(key, artifact_name, build, load)
        except BaseException:
            if created:  # a failed first build leaves no empty cache folder behind
                self._remove_if_empty(created)
            raise
        finally:
            lock.release()

    def _remove_if_empty(self, folders: list[Path]) -> None:
        (self.dir / ".lock").unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: another process uses it
            for folder in folders:
                folder.rmdir()

    def _get_or_build_locked(
        self,
        key: CacheKey,
        artifact_name: str,
        build: Callable[[Path], dict[str, Any]],
        load: Callable[[Path], T],
    ) -> CacheResult[T]:
        artifact = self.dir / artifact_name
        manifest = self.read_manifest()
        reason = self._stale_reason(manifest, key, artifact_name)
        if reason is None:
            assert manifest is not None
            problem = self._corruption(manifest, artifact)
            if problem is None:
                try:
                    value = load(artifact)
                except Exception as err:  # any load failure means a bad artifact
                    problem = f"it failed to load ({type(err).__name__}: {err})"
                else:
                    return CacheResult(value, artifact, manifest, False, "cache hit")
            reason = f"corrupt artifact {artifact}: {problem}; deleted it"
            self.warn(f"engine cache: {reason}, rebuilding")
            self._remove(artifact)
        self.log(f"engine cache: building {artifact_name} in {self.dir} because {reason}")
        manifest = self._build(key, artifact, build)
        try:
            value = load(artifact)
        except Exception:
            self._remove(artifact)  # never leave an artifact that cannot load
            raise
        return CacheResult(value, artifact, manifest, True, reason)

    def _stale_reason(
        self, manifest: dict[str, Any] | None, key: CacheKey, artifact_name: str
    ) -> str | None:
        if manifest is None:
            return "there is no cached engine yet"
        if manifest.get("manifest_version") != MANIFEST_VERSION:
            return "the manifest format changed"
        if manifest.get("artifact") != artifact_name or manifest.get("key") != key.digest:
            changes = key.changes_from(manifest.get("key_parts") or {})
            return "the key changed (" + ("; ".join(changes) or "unknown parts") + ")"
        return None

    @staticmethod
    def _corruption(manifest: dict[str, Any], artifact: Path) -> str | None:
        if not artifact.is_file():
            return "the file is missing"
        size = artifact.stat().st_size
        if size != manifest.get("size"):
            return f"size {size} bytes, manifest says {manifest.get('size')} (truncated?)"
        if file_sha256(artifact) != manifest.get("sha256"):
            return "its sha256 differs from the manifest's"
        return None

    def _build(
        self, key: CacheKey, artifact: Path, build: Callable[[Path], dict[str, Any]]
    ) -> dict[str, Any]:
        # Keep the suffix: some savers/loaders go by it (torch.export wants .ep / .pt2).
        tmp = artifact.with_name(f".tmp-{os.getpid()}-{artifact.name}")
        self._remove(tmp)
        self.manifest_path.unlink(missing_ok=True)  # an old manifest must not vouch for new bytes
        t0 = time.perf_counter()
        try:
            info = build(tmp)
            if not tmp.is_file():
                raise RuntimeError(f"engine build wrote no artifact at {tmp}")
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            manifest = {
                "manifest_version": MANIFEST_VERSION,
                "artifact": artifact.name,
                "key": key.digest,
                "key_parts": key.parts,
                "size": tmp.stat().st_size,
                "sha256": file_sha256(tmp),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "build_s": round(time.perf_counter() - t0, 3),
                "info": info,
            }
            os.replace(tmp, artifact)
        finally:
            self._remove(tmp)
        tmp_manifest = self.manifest_path.with_name(f".{MANIFEST}.tmp-{os.getpid()}")
        tmp_manifest.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.replace(tmp_manifest, self.manifest_path)
        return manifest

    @staticmethod
    def _remove(path: Path) -> None:
        path.unlink(missing_ok=True)
