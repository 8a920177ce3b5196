"""Samples whose thermal image is re-mapped onto the RGB grid by a `ThermalGeometry`.

Training (a data source's `thermal_geometry:`), `ivtuning eval --thermal-geometry` and
`ivtuning bench registration` read pairs through this, so a rig's calibration
(`ivtuning calibrate`) is applied by the same function as in the node.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ivtuning_ros.geometry import ThermalGeometry
from ivtuning_ros.types import RGBTSample


class ThermalMapped(Sequence[RGBTSample]):
    """A sequence of samples, each thermal image mapped by `geometry` (attributes of the
    underlying data set pass through)."""

    def __init__(self, samples: Sequence[RGBTSample], geometry: ThermalGeometry) -> None:
        self.samples, self.geometry = samples, geometry

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        sample = self.samples[index]
        thermal = self.geometry.apply(sample.thermal, sample.rgb.shape[:2])
        return dataclasses.replace(sample, thermal=thermal)

    def subset(self, indices) -> ThermalMapped:
        """The same mapping over the underlying data set's `subset`."""
        return ThermalMapped(self.samples.subset(indices), self.geometry)

    def __getattr__(self, name: str):
        if name in ("samples", "geometry"):
            raise AttributeError(name)
        return getattr(self.samples, name)
