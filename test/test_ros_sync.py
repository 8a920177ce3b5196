"""Pair synchroniser without DDS: a fake clock drives arrivals and timeouts."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivtuning_ros.ros.slot import LatestSlot
from ivtuning_ros.ros.sync import ON_TIMEOUT, PairSynchronizer, SyncConfig

# A loaded 2-core machine makes data generation slow; that is not a failure.
SLOW_OK = [HealthCheck.too_slow]

S = 1_000_000_000  # ns per second


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make(standalone=("rgb", "thermal"), **cfg):
    clock, got = Clock(), []
    sync = PairSynchronizer(
        SyncConfig(**cfg), got.append, clock, stamp_now_ns=lambda: 777 * S, standalone=standalone
    )
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


@pytest.mark.parametrize("camera", ["rgb", "thermal"])
def test_only_the_named_camera_runs_alone(camera):
    """degraded_<camera>_only: for a model that cannot do without the other camera (the
    shipped thermal-primary one without thermal), that camera's lone frames are dropped."""
    other = "thermal" if camera == "rgb" else "rgb"
    sync, clock, got = make(timeout=0.5, on_timeout=f"degraded_{camera}_only")
    sync.add(camera, 10 * S, "kept")
    clock.t += 0.6
    sync.poll()
    assert [getattr(p, camera).msg for p in got] == ["kept"] and getattr(got[0], other) is None
    assert sync.counts[f"degraded_{camera}_only"] == 1
    clock.t += 5.0  # the first camera falls silent in turn: the other one's lone frame goes
    sync.add(other, 20 * S, "dropped")
    clock.t += 0.6
    sync.poll()
    assert len(got) == 1 and sync.counts[f"{other}_timeout"] == 1
    assert f"on_timeout degraded_{camera}_only" in sync.last_problem[f"{other}_timeout"]


def test_auto_runs_lone_frames_only_of_the_cameras_the_model_does_without_partner():
    """The default: a thermal-primary model (standalone thermal) runs a lone thermal frame
    and drops a lone RGB one, saying why; a model that runs on either runs both."""
    assert SyncConfig().on_timeout == "degraded_auto"
    sync, clock, got = make(timeout=0.5, standalone=("thermal",))
    sync.add("thermal", 10 * S, "t")
    clock.t += 0.6
    sync.poll()
    assert [p.thermal.msg for p in got] == ["t"] and got[0].rgb is None
    clock.t += 5.0  # now the thermal camera is the silent one
    sync.add("rgb", 20 * S, "r")
    clock.t += 0.6
    sync.poll()
    assert len(got) == 1 and sync.counts["rgb_timeout"] == 1
    assert "runs alone only on thermal frames" in sync.last_problem["rgb_timeout"]
    sync, clock, got = make(timeout=0.5)
    sync.add("rgb", 10 * S, "r")
    clock.t += 0.6
    sync.poll()
    assert [p.rgb.msg for p in got] == ["r"] and sync.counts["degraded_rgb_only"] == 1


@pytest.mark.parametrize(
    ("on_timeout", "standalone", "runners"),
    [
        ("degraded_auto", ("thermal",), ("thermal",)),
        ("degraded_auto", ("rgb", "thermal"), ("rgb", "thermal")),
        ("degraded", ("thermal",), ("rgb", "thermal")),
        ("degraded_rgb_only", ("thermal",), ("rgb",)),
        ("drop", ("rgb", "thermal"), ()),
    ],
)
def test_lone_runners_name_the_cameras_results_go_on_from(on_timeout, standalone, runners):
    """What diagnostics reads to tell a degraded run (WARN) from stopped results (ERROR)."""
    sync, _clock, _got = make(on_timeout=on_timeout, standalone=standalone)
    assert sync.lone_runners() == runners


@pytest.mark.parametrize("standalone", [(), ("rgb", "infrared")])
def test_standalone_cameras_must_be_named_cameras(standalone):
    with pytest.raises(ValueError, match="standalone cameras"):
        make(standalone=standalone)


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
        ({"policy": "exact"}, "policy"),
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
    on_timeout=st.sampled_from(ON_TIMEOUT),
    policy=st.sampled_from(["approximate", "reference"]),
    standalone=st.sampled_from([("rgb",), ("thermal",), ("rgb", "thermal")]),
)
def test_every_frame_is_emitted_at_most_once_and_pairs_respect_the_slop(
    events, slop_ms, queue_size, on_timeout, policy, standalone
):
    """Under the reference policy a thermal frame may pair with several RGB frames, but
    never also go out alone."""
    clock, got = Clock(), []
    cfg = SyncConfig(queue_size=queue_size, slop=slop_ms / 1e3, timeout=0.3,
                     on_timeout=on_timeout, policy=policy)  # fmt: skip
    sync = PairSynchronizer(cfg, got.append, clock, standalone=standalone)
    for i, (stream, stamp_ms, dt_ms) in enumerate(events):
        clock.t += dt_ms / 1e3
        sync.add(stream, (1 + stamp_ms) * 1_000_000, (stream, i))
    clock.t += 10.0
    sync.poll()
    rgb = [p.rgb.msg for p in got if p.rgb is not None]
    paired_thermal = {p.thermal.msg for p in got if p.rgb is not None and p.thermal is not None}
    lone_thermal = [p.thermal.msg for p in got if p.rgb is None]
    assert len(rgb) == len(set(rgb)) and len(lone_thermal) == len(set(lone_thermal))
    assert not paired_thermal & set(lone_thermal)
    if policy == "approximate":
        thermal = [p.thermal.msg for p in got if p.thermal is not None]
        assert len(thermal) == len(set(thermal))
    for p in got:
        if p.rgb is not None and p.thermal is not None:
            assert abs(p.rgb.key_ns - p.thermal.key_ns) <= slop_ms * 1_000_000
        else:
            alone = "rgb" if p.thermal is None else "thermal"
            auto = on_timeout == "degraded_auto" and alone in standalone
            assert auto or on_timeout in ("degraded", f"degraded_{alone}_only")
    assert sync.queued() == {"rgb": 0, "thermal": 0}  # all left by the final timeout


def camera_events(rgb_hz: float, thermal_hz: float, seconds: float, delay: float = 0.02):
    """(arrival s, stream, stamp ns) of two free-running cameras, in arrival order; every
    frame arrives `delay` after its stamp (the thermal one 5 ms later still)."""
    events = [(k / rgb_hz + delay, "rgb", round(k / rgb_hz * S) + 10 * S)
              for k in range(int(seconds * rgb_hz))]  # fmt: skip
    events += [(k / thermal_hz + delay + 0.005, "thermal", round(k / thermal_hz * S) + 10 * S)
               for k in range(int(seconds * thermal_hz))]  # fmt: skip
    return sorted(events)


def run_cameras(policy: str, events, slop: float = 0.06):
    clock, got, emitted_at = Clock(), [], []

    def keep(pair):
        got.append(pair)
        emitted_at.append(clock.t)

    sync = PairSynchronizer(SyncConfig(slop=slop, policy=policy), keep, clock)
    start = clock.t
    for arrival, stream, stamp in events:
        clock.t = start + arrival
        sync.poll()
        sync.add(stream, stamp, (stream, stamp))
    clock.t += 5.0
    sync.poll()
    return sync, got, [t - start for t in emitted_at]


def test_reference_policy_gives_every_rgb_frame_its_closest_thermal_frame():
    events = camera_events(10.0, 8.7, 10.0)  # an RGB camera beside an 8.7 Hz thermal core
    thermal = [stamp for _, stream, stamp in events if stream == "thermal"]
    rgb = [stamp for _, stream, stamp in events if stream == "rgb"]
    _, approx_pairs, _ = run_cameras("approximate", events)
    assert len(approx_pairs) == len(thermal) < 0.9 * len(rgb)  # each thermal frame once
    ref, pairs, emitted_at = run_cameras("reference", events)
    assert [p.rgb.stamp_ns for p in pairs] == rgb  # every RGB frame, in order
    arrival = {stamp: t for t, _, stamp in events}
    for p, t in zip(pairs, emitted_at, strict=True):
        closest = min(thermal, key=lambda k: abs(k - p.rgb.stamp_ns))
        assert p.thermal.stamp_ns == closest
        # it waited at most for the thermal frame it took
        assert t <= max(arrival[p.rgb.stamp_ns], arrival[closest]) + 1e-9
    assert len({p.thermal.stamp_ns for p in pairs}) < len(pairs)  # thermal frames reused
    assert ref.counts["pairs"] == len(rgb) and not ref.last_problem
    assert ref.queued() == {"rgb": 0, "thermal": 0}


def test_reference_policy_waits_only_while_a_closer_thermal_frame_is_due():
    sync, _, got = make(slop=0.06, policy="reference")
    for k in range(3):  # thermal every 100 ms: the next is due at 10.3 s
        sync.add("thermal", 10 * S + k * 100_000_000, f"t{k}")
    sync.add("rgb", 10 * S + 210_000_000, "r-near")  # 10 ms after t2, 90 ms before t3
    assert [(p.rgb.msg, p.thermal.msg) for p in got] == [("r-near", "t2")]
    sync.add("rgb", 10 * S + 260_000_000, "r-mid")  # t2 within slop, but t3 due closer
    assert len(got) == 1 and sync.queued()["rgb"] == 1
    sync.add("thermal", 10 * S + 300_000_000, "t3")
    assert (got[-1].rgb.msg, got[-1].thermal.msg) == ("r-mid", "t3")
    sync.add("rgb", 10 * S + 340_000_000, "r-reuse")  # t3 again: closer than t4 will be
    assert (got[-1].rgb.msg, got[-1].thermal.msg) == ("r-reuse", "t3")
    sync.add("rgb", 10 * S + 500_000_000, "r-far")  # beyond slop of t3: waits for t5
    sync.add("thermal", 10 * S + 600_000_000, "t5")  # t4 lost: r-far has no partner
    assert len(got) == 3 and sync.counts["rgb_unmatched"] == 1
    assert sync.queued()["rgb"] == 0


def test_reference_policy_exact_stamps_pair_at_once():
    sync, _, got = make(policy="reference")  # hardware-triggered cameras share stamps
    sync.add("thermal", 10 * S, "t")
    sync.add("rgb", 10 * S, "r")
    assert [(p.rgb.msg, p.thermal.msg) for p in got] == [("r", "t")]


def test_reference_policy_timeout_takes_the_closest_frame_it_has():
    sync, clock, got = make(slop=0.06, timeout=0.5, policy="reference")
    for k in range(3):
        sync.add("thermal", 10 * S + k * 100_000_000, f"t{k}")
    sync.add("rgb", 10 * S + 260_000_000, "r")  # waits for t3, which never comes
    clock.t += 0.4
    sync.poll()
    assert got == []
    clock.t += 0.2
    sync.poll()
    assert [(p.rgb.msg, p.thermal.msg) for p in got] == [("r", "t2")]


def test_reference_policy_timeout_keeps_a_thermal_frame_that_arrived_first():
    """The thermal frame an RGB frame falls back on arrived before it, so it times out
    first: the waiting RGB frame must take it then, not be left with nothing."""
    sync, clock, got = make(slop=0.06, timeout=0.5, policy="reference")
    for k in range(3):  # arriving as stamped, 100 ms apart
        sync.add("thermal", 10 * S + k * 100_000_000, f"t{k}")
        clock.t += 0.1
    sync.add("rgb", 10 * S + 260_000_000, "r")  # waits for t3 (due closer), which never comes
    clock.t += 0.25  # t0 leaves; r keeps waiting
    sync.poll()
    assert got == []
    clock.t += 0.2  # t2 has waited 0.55 s, r 0.45 s
    sync.poll()
    assert [(p.rgb.msg, p.thermal.msg) for p in got] == [("r", "t2")]
    assert sync.counts["rgb_unmatched"] == 0 and sync.queued() == {"rgb": 0, "thermal": 0}


def test_reference_policy_degrades_when_a_camera_stops_and_counts_unused_thermal():
    sync, clock, got = make(slop=0.06, timeout=0.5, policy="reference")
    sync.add("rgb", 10 * S, "r")  # thermal camera silent
    clock.t += 0.6
    sync.poll()
    assert [(p.rgb.msg, p.thermal) for p in got] == [("r", None)]
    sync.add("thermal", 11 * S, "t-lone")  # now the RGB camera is silent
    clock.t += 0.6
    sync.poll()
    assert (got[-1].rgb, got[-1].thermal.msg) == (None, "t-lone")
    assert sync.counts["degraded_rgb_only"] == sync.counts["degraded_thermal_only"] == 1
    # both alive, RGB at half the thermal rate: every other thermal frame serves nobody
    for k in range(8):
        sync.add("thermal", 20 * S + k * 100_000_000, f"t{k}")
        if k % 2 == 0:
            sync.add("rgb", 20 * S + k * 100_000_000, f"r{k}")
        clock.t += 0.1
    clock.t += 1.0
    sync.poll()
    assert [p.thermal.msg for p in got[2:]] == ["t0", "t2", "t4", "t6"]
    assert sync.counts["thermal_unused"] == 4 and "thermal_unused" not in sync.last_problem


def test_policy_change_at_run_time_never_pairs_a_thermal_frame_twice():
    sync, _, got = make(slop=0.05, policy="reference")
    sync.add("thermal", 10 * S, "t")
    sync.add("rgb", 10 * S, "r1")
    sync.set_config(SyncConfig(slop=0.05, policy="approximate"))
    sync.add("rgb", 10 * S + 10_000_000, "r2")  # would take "t" again under reference
    assert [p.rgb.msg for p in got] == ["r1"] and sync.queued() == {"rgb": 1, "thermal": 0}
