"""Pair synchroniser without DDS: a fake clock drives arrivals and timeouts."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivtuning_ros.ros.slot import LatestSlot
from ivtuning_ros.ros.sync import PairSynchronizer, SyncConfig

# A loaded 2-core machine makes data generation slow; that is not a failure.
SLOW_OK = [HealthCheck.too_slow]

S = 1_000_000_000  # ns per second


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make(**cfg):
    clock, got = Clock(), []
    sync = PairSynchronizer(SyncConfig(**cfg), got.append, clock, stamp_now_ns=lambda: 777 * S)
    return sync, clock, got


def test_pairs_within_slop_and_not_beyond():
    sync, _, got = make(slop=0.05)
    sync.add("rgb", 10 * S, "r1")
    sync.add("thermal", 10 * S + 40_000_000, "t1")  # 40 ms: pairs
    sync.add("rgb", 11 * S, "r2")
    sync.add("thermal", 11 * S + 60_000_000, "t2")  # 60 ms: beyond slop
    assert [(p.rgb.msg, p.thermal.msg) for p in got] == [("r1", "t1")]
    assert sync.counts["pairs"] == 1


def test_closest_partner_wins_and_both_leave_their_queues():
    sync, _, got = make(slop=0.1)
    sync.add("thermal", 10 * S - 80_000_000, "far")
    sync.add("thermal", 10 * S + 10_000_000, "near")
    sync.add("rgb", 10 * S, "r")
    assert (got[0].rgb.msg, got[0].thermal.msg) == ("r", "near")
    sync.add("rgb", 10 * S + 20_000_000, "r2")  # "near" is gone; "far" is 100 ms away
    assert [p.thermal.msg for p in got] == ["near", "far"]


def test_stamp_offset_shifts_one_stream_before_matching():
    sync, _, got = make(slop=0.02, thermal_offset=-0.2)  # thermal driver stamps 200 ms late
    sync.add("rgb", 10 * S, "r")
    sync.add("thermal", 10 * S + 200_000_000, "t")
    assert len(got) == 1 and got[0].thermal.stamp_ns == 10 * S + 200_000_000


def test_queue_size_bounds_waiting_frames():
    sync, _, got = make(queue_size=2, slop=0.001)
    for i in range(5):
        sync.add("rgb", (10 + i) * S, f"r{i}")
    assert sync.counts["rgb_queue_overflow"] == 3
    sync.add("thermal", 10 * S, "t-old")  # r0 was evicted: no partner
    sync.add("thermal", 14 * S, "t-new")
    assert [p.rgb.msg for p in got] == ["r4"]


def test_lone_frame_goes_degraded_when_partner_camera_is_silent():
    sync, clock, got = make(timeout=0.5, on_timeout="degraded")
    sync.add("rgb", 10 * S, "r")
    clock.t += 0.4
    sync.poll()
    assert got == []
    clock.t += 0.2
    sync.poll()
    assert len(got) == 1 and got[0].thermal is None and got[0].reference.msg == "r"
    assert sync.counts["degraded_rgb_only"] == 1


def test_lone_frame_dropped_when_configured():
    sync, clock, got = make(timeout=0.5, on_timeout="drop")
    sync.add("thermal", 10 * S, "t")
    clock.t += 1.0
    sync.poll()
    assert got == [] and sync.counts["thermal_timeout"] == 1
    assert "rgb silent" in sync.last_problem["thermal_timeout"]


def test_unmatched_frame_with_live_partner_is_dropped_not_degraded():
    sync, clock, got = make(timeout=0.5, slop=0.01, on_timeout="degraded")
    sync.add("rgb", 10 * S, "r")
    clock.t += 0.3
    sync.add("thermal", 12 * S, "t")  # thermal alive but far from the RGB stamp
    clock.t += 0.3
    sync.poll()
    assert got == [] and sync.counts["rgb_unmatched"] == 1


def test_bad_stamps_are_counted_and_dropped():
    sync, _, got = make(slop=0.05)
    sync.add("rgb", 0, "zero")
    sync.add("rgb", 10 * S, "r1")
    sync.add("rgb", 10 * S, "repeat")
    sync.add("rgb", 9 * S, "back")
    sync.add("thermal", 9 * S, "t-back")  # would pair with "back" had it been queued
    assert got == []
    assert sync.counts["rgb_zero_stamp"] == 1
    assert sync.counts["rgb_repeated_stamp"] == 1
    assert sync.counts["rgb_backwards_stamp"] == 1
    assert "went back 1.000000 s" in sync.last_problem["rgb_backwards_stamp"]
    sync.add("rgb", 11 * S, "r2")  # stream recovers after a bad stamp
    sync.add("thermal", 11 * S, "t2")
    assert [p.rgb.msg for p in got] == ["r2"]


def test_stream_that_stays_behind_is_taken_as_a_clock_reset():
    sync, _, got = make(slop=0.05)
    sync.add("rgb", 100 * S, "r-old")
    for i in range(3):  # a looping bag starts again at t = 5 s
        sync.add("rgb", (5 + i) * S, f"r{i}")
    assert sync.counts["rgb_backwards_stamp"] == 2 and sync.counts["rgb_clock_reset"] == 1
    sync.add("thermal", 7 * S, "t")
    assert [p.rgb.msg for p in got] == ["r2"]
    sync.add("rgb", 6 * S, "r-back")  # history restarted at 7 s: 6 s is backwards again
    assert sync.counts["rgb_backwards_stamp"] == 3


def test_zero_stamp_can_be_replaced_by_arrival_time():
    sync, _, got = make(zero_stamp="arrival_time")
    sync.add("thermal", 0, "t")
    sync.add("rgb", 777 * S, "r")
    assert len(got) == 1 and got[0].thermal.stamp_ns == 777 * S


def test_settings_change_at_run_time():
    sync, _, got = make(slop=0.01)
    sync.add("rgb", 10 * S, "r")
    sync.set_config(SyncConfig(slop=0.1))
    sync.add("thermal", 10 * S + 50_000_000, "t")
    assert len(got) == 1


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"queue_size": 0}, "queue_size"),
        ({"slop": -1.0}, "slop"),
        ({"on_timeout": "wait"}, "on_timeout"),
        ({"zero_stamp": "keep"}, "zero_stamp"),
    ],
)
def test_invalid_sync_config_names_the_setting(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        SyncConfig(**kwargs)


def test_latest_slot_keeps_only_the_newest():
    slot = LatestSlot()
    assert slot.put(1) is None
    assert slot.put(2) == 1  # 1 was superseded
    assert slot.take(timeout=0) == 2
    assert slot.take(timeout=0.01) is None
    slot.close()
    assert slot.take(timeout=None) is None


@settings(max_examples=150, deadline=None, suppress_health_check=SLOW_OK)
@given(
    events=st.lists(
        # (stream, stamp ms, ms since the previous arrival); integers, not floats:
        # an engine in the same test session may have set flush-to-zero, which makes
        # hypothesis refuse float strategies
        st.tuples(st.sampled_from(["rgb", "thermal"]), st.integers(0, 3000), st.integers(0, 200)),
        max_size=60,
    ),
    slop_ms=st.integers(0, 200),
    queue_size=st.integers(1, 6),
    on_timeout=st.sampled_from(["drop", "degraded"]),
)
def test_every_frame_is_emitted_at_most_once_and_pairs_respect_the_slop(
    events, slop_ms, queue_size, on_timeout
):
    clock, got = Clock(), []
    sync = PairSynchronizer(
        SyncConfig(queue_size=queue_size, slop=slop_ms / 1e3, timeout=0.3, on_timeout=on_timeout),
        got.append,
        clock,
    )
    for i, (stream, stamp_ms, dt_ms) in enumerate(events):
        clock.t += dt_ms / 1e3
        sync.add(stream, (1 + stamp_ms) * 1_000_000, (stream, i))
    clock.t += 10.0
    sync.poll()
    seen = [f.msg for p in got for f in (p.rgb, p.thermal) if f is not None]
    assert len(seen) == len(set(seen))
    for p in got:
        if p.rgb is not None and p.thermal is not None:
            assert abs(p.rgb.key_ns - p.thermal.key_ns) <= slop_ms * 1_000_000
        else:
            assert on_timeout == "degraded"
    assert sync.queued() == {"rgb": 0, "thermal": 0}  # all left by the final timeout
