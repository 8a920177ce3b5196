"""Samples whose thermal image is re-mapped onto the RGB grid by a `ThermalGeometry`.

Training (a data source's `thermal_geometry:`), `ivtuning eval --thermal-geometry` and
`ivtuning bench registration` read pairs through this, so a rig's calibration
(`ivtuning calibrate`) is applied by the same function as in the node.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ivtuning_ros.data.views import SampleView
from ivtuning_ros.geometry import ThermalGeometry
from ivtuning_ros.types import RGBTSample


class ThermalMapped(SampleView):
    """A sequence of samples, each thermal image mapped by `geometry` (attributes of the
    underlying data set pass through)."""

    _own = ("samples", "geometry")

    def __init__(self, samples: Sequence[RGBTSample], geometry: ThermalGeometry) -> None:
        super().__init__(samples)
        self.geometry = geometry

    def transform(self, sample: RGBTSample) -> RGBTSample:
        thermal = self.geometry.apply(sample.thermal, sample.rgb.shape[:2])
        return dataclasses.replace(sample, thermal=thermal)

    def subset(self, indices) -> ThermalMapped:
        """The same mapping over the underlying data set's `subset`."""
        return ThermalMapped(self.samples.subset(indices), self.geometry)
