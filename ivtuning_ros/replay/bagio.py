"""rosbag2 folders (mcap or sqlite3) through the `rosbags` library.

One type store serves every bag we read or write: the ROS 2 Kilted standard types (the
distribution our rclpy wheels come from) plus our own msg/*.msg definitions, so that
recorded outputs carry the same type hashes rclpy computes. Reading is wrapped so that
users' bags fail with errors that name the bag, the topic and what the bag does hold,
and so that a truncated bag still yields every message before the damage.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer
from rosbags.rosbag2.storage_mcap import McapReader, read_sized
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from ivtuning_ros.paths import share_dir

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"  # image_transport's <topic>/compressed
CAMERA_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
STORAGES: dict[str, StoragePlugin] = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
MCAP_MAGIC = b"\x89MCAP0\r\n"
_BAG_SUFFIXES = {".yaml", ".mcap", ".db3", ".zstd"}
BAG_VERSION = 9  # rosbag2 metadata version written by Jazzy and later


class BagError(ValueError):
    """A bag that cannot be used as asked (missing topic, wrong type, unreadable)."""


@functools.cache
def typestore() -> Typestore:
    """Kilted standard types + ivtuning_ros/msg/* (parsed from the shipped .msg files) +
    the installed vision_msgs (not a Kilted standard type; the node publishes it)."""
    store = get_typestore(Stores.ROS2_KILTED)
    msg_dir = share_dir() / "msg"
    if not msg_dir.is_dir():
        raise FileNotFoundError(f"message definitions not found: {msg_dir}")
    types = _msg_types("ivtuning_ros", msg_dir)
    vision_dir = _installed_msg_dir("vision_msgs")
    if vision_dir is not None:
        types.update(_msg_types("vision_msgs", vision_dir))
    store.register(types)
    return store


def _msg_types(package: str, msg_dir: Path) -> dict:
    types = {}
    for path in sorted(msg_dir.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{package}/msg/{path.stem}"))
    return types


def _installed_msg_dir(package: str) -> Path | None:
    """share/<package>/msg of a sourced ROS 2 install (AMENT_PREFIX_PATH) or this venv
    (where setup builds compat/ packages)."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for prefix in [*prefixes, sys.prefix]:
        msg_dir = Path(prefix) / "share" / package / "msg"
        if msg_dir.is_dir():
            return msg_dir
    return None


def storage_plugin(name: str) -> StoragePlugin:
    try:
        return STORAGES[name]
    except KeyError:
        raise ValueError(
            f"unknown bag storage {name!r}; choose one of {sorted(STORAGES)}"
        ) from None


def open_writer(path: str | Path, storage: str) -> Writer:
    """An open rosbag2 writer (version 9); the folder must not exist yet."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"bag output {path} already exists; remove it or choose another")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = Writer(path, version=BAG_VERSION, storage_plugin=storage_plugin(storage))
    writer.open()
    return writer


class _CutMcapReader(McapReader):
    """An mcap file cut short (recorder killed, disk full): no summary and no footer.

    Records are scanned from the start; schemas and channels seen before the cut are
    kept and messages are yielded until the damaged record, where iteration raises.
    """

    def _open(self) -> None:
        assert self.bio
        if self.bio.read(8) != MCAP_MAGIC or self.bio.read(1) != b"\x01":
            raise ReaderError("not an mcap file (bad magic or header)")
        read_sized(self.bio)  # header record (profile)
        self.data_start = self.bio.tell()
        self.data_end = self.bio.seek(0, 2)
        # The scan stops at the cut; whatever channels it found before stay registered.
        with contextlib.suppress(Exception):
            self.meta_scan()


@dataclass
class BagStream:
    """Messages of chosen topics from one bag, in receive-time order.

    `error` is set (and iteration stops) when the storage turns out to be damaged part
    way; everything yielded before stays valid, so callers can still report it.
    `note` says when the bag was only readable by recovery (a cut mcap file).
    """

    path: Path
    connections: dict[str, Connection]  # role -> connection
    storage: str
    topics: dict[str, tuple[str, int]]  # every topic in the bag: name -> (type, count)
    note: str | None = None
    error: str | None = None
    read: int = 0
    _source: Reader | McapReader | None = field(default=None, repr=False)

    def count(self, role: str) -> int:
        """Messages of that role in the bag (0 when unknown: a recovered, cut file)."""
        return self.connections[role].msgcount

    def messages(self) -> Iterator[tuple[str, int, bytes]]:
        """Yield (role, bag receive time ns, serialized CDR bytes)."""
        assert self._source is not None, "BagStream is closed"
        roles = {c.id: role for role, c in self.connections.items()}
        try:
            for conn, t_ns, raw in self._source.messages(list(self.connections.values())):
                self.read += 1
                yield roles[conn.id], t_ns, raw
        except Exception as err:  # ReaderError, sqlite3 and struct errors from a damaged file
            self.error = f"bag {self.path} is damaged after {self.read} messages: {err!r}"

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None

    def __enter__(self) -> BagStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _storage_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".mcap", ".db3"))
    return [path]


def _open_source(path: Path) -> tuple[Reader | McapReader, str | None]:
    """rosbags' Reader, or the cut-mcap recovery when the Reader cannot open the file."""
    try:
        reader = Reader(path)
        reader.open()
        return reader, None
    except Exception as err:
        first = err
    files = _storage_files(path)
    if len(files) == 1 and files[0].suffix == ".mcap":
        cut = _CutMcapReader(files[0])
        try:
            cut.open()
        except Exception:
            cut = None
        if cut is not None and cut.connections:
            return cut, (
                f"{files[0].name} could not be opened normally ({first}); read by scanning "
                "its records up to the damage (a recording cut short)"
            )
    if isinstance(first, FileNotFoundError):
        raise BagError(f"{path} is not a rosbag2 bag: {first}") from None
    raise BagError(f"cannot open bag {path}: {first}") from None


def open_stream(
    path: str | Path,
    topics: Mapping[str, str | Sequence[str]],
    types: Mapping[str, Sequence[str]],
) -> BagStream:
    """Open `path` and select one topic per role (e.g. {"rgb": "/camera/rgb/image_raw"});
    a role given several candidate topics takes the first the bag holds.

    Raises FileNotFoundError for a missing bag, BagError for an unreadable one, a missing
    topic (listing what the bag holds) or a topic whose type is not in `types[role]`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bag not found: {path}")
    source, note = _open_source(path)
    by_topic: dict[str, list[Connection]] = {}
    for conn in source.connections:
        by_topic.setdefault(conn.topic, []).append(conn)
    held = {
        name: (" or ".join(sorted({c.msgtype for c in conns})), sum(c.msgcount for c in conns))
        for name, conns in by_topic.items()
    }
    try:
        connections = {}
        for role, wanted in topics.items():
            candidates = [wanted] if isinstance(wanted, str) else list(wanted)
            topic = next((t for t in candidates if t in by_topic), candidates[0])
            conns = by_topic.get(topic)
            if not conns:
                listing = ", ".join(f"{n} [{t}, {c} msgs]" for n, (t, c) in sorted(held.items()))
                raise BagError(
                    f"bag {path} has no topic {' or '.join(map(repr, candidates))} for {role}; "
                    f"it holds: {listing or 'no topics'}"
                )
            if len(conns) != 1:
                raise BagError(f"topic {topic!r} in bag {path} has {len(conns)} connections")
            if conns[0].msgtype not in types[role]:
                raise BagError(
                    f"topic {topic!r} in bag {path} carries {conns[0].msgtype}, but {role} "
                    f"needs {' or '.join(types[role])}"
                )
            connections[role] = conns[0]
    except BagError:
        source.close()
        raise
    files = _storage_files(path)
    storage = {".mcap": "mcap", ".db3": "sqlite3"}.get(files[0].suffix, "?") if files else "?"
    return BagStream(path, connections, storage, held, note=note, _source=source)


def hash_bag(path: str | Path) -> str:
    """sha256 over the bag's own files (metadata + storage, sorted by name).

    Sidecars kept in the folder (ground truth, masks) are left out: they are hashed apart.
    """
    path = Path(path)
    files = (
        sorted(p for p in path.iterdir() if p.suffix in _BAG_SUFFIXES) if path.is_dir() else [path]
    )
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(path if path.is_dir() else path.parent).as_posix().encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
    return "sha256:" + h.hexdigest()
