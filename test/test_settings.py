"""The one settings loader: types, choices, unions, nesting and errors by dotted key."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from ivtuning_ros.settings import from_mapping, to_plain


@dataclass(frozen=True)
class Inner:
    ranks: int | tuple[int, ...] = 8
    size: tuple[int, int] = (2, 3)


@dataclass(frozen=True)
class Outer:
    name: str
    mode: Literal["fast", "slow"] = "fast"
    rate: float = 1.0
    inner: Inner = field(default_factory=Inner)
    extra: dict[str, int] = field(default_factory=dict)
    note: str | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")


def test_values_are_checked_and_converted():
    cfg = from_mapping(Outer, {"name": "a", "rate": 2, "inner": {"ranks": [1, 2], "size": [4, 5]}})
    assert cfg.rate == 2.0 and isinstance(cfg.rate, float)
    assert cfg.inner == Inner((1, 2), (4, 5))
    assert from_mapping(Outer, {"name": "b", "inner": {"ranks": 3}}).inner.ranks == 3
    plain = {"name": "a", "mode": "fast", "rate": 2.0, "extra": {}, "note": None}
    assert to_plain(cfg) == {**plain, "inner": {"ranks": [1, 2], "size": [4, 5]}}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "missing key name"),
        ({"name": "a", "speed": 1}, r"unknown key speed \(allowed here: name, mode"),
        ({"name": "a", "mode": "medium"}, "mode: 'medium' is not one of fast, slow"),
        ({"name": "a", "rate": True}, "rate: expected a number, got True"),
        ({"name": "a", "rate": -1}, "rate must be > 0"),
        ({"name": "a", "inner": {"size": [1]}}, r"inner\.size: expected 2 values"),
        ({"name": "a", "inner": {"ranks": [1, "x"]}}, r"inner\.ranks\[1\]: expected an integer"),
        ({"name": "a", "inner": {"bogus": 1}}, r"unknown key inner\.bogus"),
        ({"name": "a", "extra": [1]}, "extra: expected a mapping"),
        ({"name": None}, "name: expected a string, got None"),
    ],
)
def test_errors_name_the_dotted_key(raw, message):
    with pytest.raises(ValueError, match=message):
        from_mapping(Outer, raw)
