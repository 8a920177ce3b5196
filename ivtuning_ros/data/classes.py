"""Match a data set's classes to a model's by name, never by position.

MSRS numbers (person, bicycle, car), the shipped model (person, car, bicycle), COCO json
files person=1: scoring or training by raw id would silently compare cars with bicycles.
Names are compared case-insensitively; a class only one side has is either refused or
left out and reported, as the caller chooses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ivtuning_ros.data.views import SampleView
from ivtuning_ros.types import RGBTSample


class ClassMismatch(ValueError):
    """The two class lists cannot be matched (the message lists both)."""


@dataclass(frozen=True)
class ClassMap:
    """Data ids -> model ids (-1: a data class the model does not have)."""

    data_names: tuple[str, ...]
    model_names: tuple[str, ...]
    to_model: np.ndarray  # (len(data_names),) int64

    @property
    def identity(self) -> bool:
        return self.data_names == self.model_names

    @property
    def unmatched_data(self) -> tuple[str, ...]:
        """Data classes the model does not know (their boxes are left out)."""
        return tuple(n for n, i in zip(self.data_names, self.to_model, strict=True) if i < 0)

    @property
    def unmatched_model(self) -> tuple[str, ...]:
        """Model classes the data never labels (no ground truth to score them on)."""
        hit = set(self.to_model.tolist())
        return tuple(n for i, n in enumerate(self.model_names) if i not in hit)

    def apply(self, sample: RGBTSample) -> RGBTSample:
        """The sample with its labels in model ids; boxes of unmatched classes dropped."""
        if self.identity or len(sample.labels) == 0:
            return sample
        ids = self.to_model[sample.labels]
        keep = ids >= 0
        instances = sample.instance_ids
        return replace(
            sample,
            boxes=sample.boxes[keep],
            labels=ids[keep].astype(np.int64),
            instance_ids=None if instances is None else instances[keep],
        )


def match_classes(
    data_names: Sequence[str], model_names: Sequence[str], *, exact: bool, what: str = "data"
) -> ClassMap:
    """Map `data_names` onto `model_names` by name. exact=True (training) refuses any
    class only one side has; otherwise at least one class must be shared."""
    data_names, model_names = tuple(data_names), tuple(model_names)
    index = {n.lower(): i for i, n in enumerate(model_names)}
    to_model = np.array([index.get(n.lower(), -1) for n in data_names], np.int64)
    cmap = ClassMap(data_names, model_names, to_model)
    lists = f"model classes {list(model_names)}, {what} classes {list(data_names)}"
    if exact and (cmap.unmatched_data or cmap.unmatched_model):
        raise ClassMismatch(f"class names differ ({lists}); they are matched by name")
    if not (to_model >= 0).any():
        raise ClassMismatch(f"no class name in common ({lists})")
    return cmap


class Relabeled(SampleView):
    """A sequence of samples read through a `ClassMap` (attributes pass through)."""

    _own = ("samples", "cmap")

    def __init__(self, samples: Sequence[RGBTSample], cmap: ClassMap) -> None:
        super().__init__(samples)
        self.cmap = cmap

    def transform(self, sample: RGBTSample) -> RGBTSample:
        return self.cmap.apply(sample)
