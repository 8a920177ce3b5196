"""A data set read through a per-sample transform, the rest of it passing through."""

from __future__ import annotations

from collections.abc import Sequence

from ivtuning_ros.types import RGBTSample


class SampleView(Sequence[RGBTSample]):
    """`samples` read through `transform`; the data set's other attributes (class names,
    groups, skip counts, ...) pass through. Subclasses name their own attributes in
    `_own`, so a half-built view (copy, pickle) never recurses into `samples`."""

    _own: tuple[str, ...] = ("samples",)

    def __init__(self, samples: Sequence[RGBTSample]) -> None:
        self.samples = samples

    def transform(self, sample: RGBTSample) -> RGBTSample:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self.transform(self.samples[index])

    def __getattr__(self, name: str):
        if name in self._own:
            raise AttributeError(name)
        return getattr(self.samples, name)
