"""Play a bag over DDS and record what comes back, both with raw (serialized) messages.

`BagPlayer` publishes the bag's CDR bytes unchanged (no decode/encode on the way, like
`ros2 bag play`), paced by the bag's receive timestamps divided by the rate, and logs
the wall time of every publish. `Recorder` subscribes raw to a set of topics, writes
each message into a rosbags Writer stamped with its receive time, and keeps the
receive time (rmw's own, so executor queueing in this process does not count) for the
latency figures. Both use the system clock, which every process on the host shares.
`BagClock` publishes the bag's own time on /clock while it plays (`ros2 bag play
--clock`), for nodes that run with use_sim_time.
"""

from __future__ import annotations

import importlib
import queue
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from tqdm import tqdm

from ivtuning_ros.replay.bagio import BagStream, open_writer, typestore
from ivtuning_ros.timestamps import NS


class ReplayError(ValueError):
    """A replay that cannot go on: no node listening, none publishing, or an ambiguous one.
    A ValueError, so the CLI prints it as one line like other configuration errors."""


def header_stamp_ns(raw: bytes) -> int:
    """header.stamp of a serialized message whose first field is std_msgs/Header.

    CDR: 4-byte encapsulation header (byte 1 = 1 for little endian), then the Header's
    builtin_interfaces/Time (int32 sec, uint32 nanosec).
    """
    if len(raw) < 12:
        raise ValueError(f"serialized message of {len(raw)} bytes is too short for a header")
    order = "<" if raw[1] & 1 else ">"
    sec, nanosec = struct.unpack_from(order + "iI", raw, 4)
    return sec * NS + nanosec


def message_class(type_name: str) -> type:
    """rclpy message class for 'pkg/msg/Name'."""
    pkg, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


@dataclass
class PublishLog:
    """What the player sent: per role, (header stamp ns, publish wall time ns)."""

    sent: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    wall_s: float = 0.0
    late_s_max: float = 0.0  # worst lag of a publish behind its schedule


class BagClock:
    """The recording's time on /clock, advancing at `rate` x real time from an anchor.

    A node with use_sim_time then judges header stamps against the time they were
    recorded in: its own latency figures (now - header.stamp) mean what they mean on the
    robot, instead of the months between recording and replay. The clock runs from
    `start` until `stop`, past the bag's end, so the node's timers keep firing while the
    last frames drain.
    """

    def __init__(self, node: Node, hz: float) -> None:
        from rosgraph_msgs.msg import Clock

        if not hz > 0:
            raise ValueError(f"--clock rate must be positive, got {hz}")
        self.period_s = 1.0 / hz
        self._msg_type = Clock
        # rclpy's TimeSource subscribes best effort, depth 1: a reliable publisher matches it
        reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self._pub = node.create_publisher(Clock, "/clock", reliable)
        self._anchor: tuple[int, float, float] | None = None  # bag ns, monotonic s, rate
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def now_ns(self) -> int:
        if self._anchor is None:
            raise RuntimeError("BagClock.now_ns() before start()")
        bag_ns, wall_s, rate = self._anchor
        return bag_ns + round((time.monotonic() - wall_s) * rate * 1e9)

    def start(self, bag_ns: int, wall_s: float, rate: float) -> None:
        """Bag time `bag_ns` at monotonic time `wall_s` (which may lie ahead: a pre-roll)."""
        self._anchor = (bag_ns, wall_s, rate)
        self._publish()  # before the first message, so no frame meets a zero clock
        self._thread = threading.Thread(target=self._run, daemon=True, name="bag_clock")
        self._thread.start()

    def _publish(self) -> None:
        ns = self.now_ns()
        msg = self._msg_type()
        msg.clock.sec, msg.clock.nanosec = divmod(ns, NS)
        self._pub.publish(msg)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self._publish()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


class BagPlayer:
    """Publishes a BagStream's messages on `topics` (role -> topic) at `rate` x real time,
    and the bag's time on /clock when `clock` is given."""

    # With a clock, the first message waits this long after the clock's first tick, so the
    # subscribers' time sources have it before they see a frame.
    CLOCK_PREROLL_S = 0.3

    def __init__(
        self,
        node: Node,
        stream: BagStream,
        topics: Mapping[str, str],
        rate: float,
        qos_depth: int = 10,
        clock: BagClock | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"--rate must be positive, got {rate}")
        self.stream, self.rate, self.clock = stream, rate, clock
        qos = QoSProfile(depth=qos_depth, reliability=ReliabilityPolicy.RELIABLE)
        self.publishers = {
            role: node.create_publisher(message_class(stream.connections[role].msgtype), topic, qos)
            for role, topic in topics.items()
        }

    def wait_for_subscribers(self, timeout_s: float) -> None:
        """Block until every topic has a subscriber (the node), or raise naming the topic."""
        deadline = time.monotonic() + timeout_s
        while True:
            missing = [
                p.topic_name for p in self.publishers.values() if p.get_subscription_count() == 0
            ]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise ReplayError(
                    f"no subscriber on {', '.join(missing)} after {timeout_s:.0f} s: is the node "
                    "running, and does it listen on these topics (--topics / params file)?"
                )
            time.sleep(0.05)

    def play(self, progress: bool = True, stop: threading.Event | None = None) -> PublishLog:
        log = PublishLog(sent={role: [] for role in self.publishers})
        total = sum(self.stream.count(role) for role in self.publishers)
        bar = tqdm(total=total, desc=f"replay x{self.rate:g}", unit="msg", disable=not progress)
        t0_wall = time.monotonic()
        t0_bag: int | None = None
        try:
            for role, t_ns, raw in self.stream.messages():
                if stop is not None and stop.is_set():
                    break
                if t0_bag is None:
                    t0_bag = t_ns
                    if self.clock is not None:
                        t0_wall += self.CLOCK_PREROLL_S
                        self.clock.start(t0_bag, t0_wall, self.rate)
                due = t0_wall + (t_ns - t0_bag) / 1e9 / self.rate
                lag = time.monotonic() - due
                if lag < 0:
                    time.sleep(-lag)
                log.late_s_max = max(log.late_s_max, lag)
                stamp = header_stamp_ns(raw)
                log.sent[role].append((stamp, time.time_ns()))
                self.publishers[role].publish(bytes(raw))
                bar.update()
        finally:
            bar.close()
        log.wall_s = time.monotonic() - t0_wall
        return log


@dataclass
class Received:
    topic: str
    receive_ns: int  # rmw receive time, system clock
    raw: bytes


class Recorder:
    """Raw subscriptions on `topics` (name -> type) recorded into a new bag at `path`.

    Callbacks only queue the bytes; one writer thread owns the rosbags Writer (sqlite3
    objects may only be used by the thread that made them, and disk writes stay off the
    executor that times the messages).
    """

    def __init__(
        self,
        node: Node,
        path: Path,
        storage: str,
        topics: Mapping[str, str],
        qos_for: Callable[[str], QoSProfile],
        keep: Callable[[str], bool],
    ) -> None:
        self.topics = dict(topics)
        self.lock = threading.Lock()
        self.kept: list[Received] = []
        self.counts: dict[str, int] = dict.fromkeys(topics, 0)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(
            target=self._write_loop, args=(Path(path), storage), daemon=True, name="recorder"
        )
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        for topic, type_name in sorted(self.topics.items()):
            node.create_subscription(
                message_class(type_name),
                topic,
                self._callback(topic, keep(topic)),
                qos_for(topic),
                raw=True,
            )

    def _write_loop(self, path: Path, storage: str) -> None:
        try:
            writer = open_writer(path, storage)
            store = typestore()
            conns = {
                t: writer.add_connection(t, ty, typestore=store)
                for t, ty in sorted(self.topics.items())
            }
        except BaseException as err:
            self._error = err
            self._ready.set()
            return
        self._ready.set()
        try:
            while (item := self._queue.get()) is not None:
                topic, received, raw = item
                writer.write(conns[topic], received, raw)
        finally:
            writer.close()

    def _callback(self, topic: str, keep: bool):
        def on_message(raw: bytes, info) -> None:
            received = int(info["received_timestamp"]) or time.time_ns()
            with self.lock:
                if self._closed:
                    return
                self.counts[topic] += 1
                self._queue.put((topic, received, raw))
                if keep:
                    self.kept.append(Received(topic, received, bytes(raw)))

        return on_message

    def close(self) -> None:
        """Stop recording and finish the bag (metadata written)."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(None)
        self._thread.join()
