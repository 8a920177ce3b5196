"""Train / validation / test splits of video-sampled data by contiguous blocks of names.

Frames sampled from driving videos sit next to near-copies of themselves (00004N,
00008N, ... are the same street a fraction of a second apart), so a random split puts a
copy of every test frame into training and the test figure measures memory. Blocks of
consecutive names go whole to one part; parts are interleaved along the sequence (each
block to the part furthest below its share) so that every part sees every kind of scene;
a block never straddles a change of group (e.g. MSRS's day / night suffix, a different
drive); and the `gap` names of a training block nearest a held-out block are left out,
since they are near-copies of held-out frames.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby

from ivtuning_ros.data.formats.common import PairDataset

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class BlockSplit:
    """How to cut: `block` names a block, `val` / `test` shares of all names, `gap`."""

    block: int = 12
    val: float = 0.15
    test: float = 0.25
    gap: int = 1

    def __post_init__(self) -> None:
        if self.block < 1:
            raise ValueError(f"block must be >= 1 name, got {self.block}")
        if self.gap < 0:
            raise ValueError(f"gap must be >= 0, got {self.gap}")
        if not (0.0 <= self.val < 1.0 and 0.0 <= self.test < 1.0 and self.val + self.test < 1.0):
            raise ValueError(f"val {self.val} + test {self.test} must leave training data")


@dataclass(frozen=True)
class SplitResult:
    parts: Mapping[str, tuple[str, ...]]  # part -> names (sorted)
    left_out: tuple[str, ...] = field(default=())  # training names next to held-out blocks

    def __getitem__(self, part: str) -> tuple[str, ...]:
        if part not in self.parts:
            raise KeyError(f"no split part {part!r}; choose from {', '.join(PARTS)}")
        return self.parts[part]


def block_split(
    names: Sequence[str], spec: BlockSplit, group: Callable[[str], str] = lambda _: ""
) -> SplitResult:
    """Cut sorted `names` into blocks and deal them to train / val / test (deterministic)."""
    ordered = sorted(set(names))
    if len(ordered) < 3:
        raise ValueError(f"{len(ordered)} names are too few to split three ways")
    blocks: list[list[str]] = []
    for _, run in groupby(ordered, key=group):
        run = list(run)
        blocks.extend(run[i : i + spec.block] for i in range(0, len(run), spec.block))
    share = {"train": 1.0 - spec.val - spec.test, "val": spec.val, "test": spec.test}
    given = dict.fromkeys(PARTS, 0)
    owner: list[str] = []
    for blk in blocks:
        dealt = sum(given.values()) + len(blk)
        part = max(PARTS, key=lambda p: share[p] * dealt - given[p])
        owner.append(part)
        given[part] += len(blk)
    parts: dict[str, list[str]] = {p: [] for p in PARTS}
    left_out: list[str] = []
    for i, (blk, part) in enumerate(zip(blocks, owner, strict=True)):
        keep = list(blk)
        if part == "train" and spec.gap:
            if i > 0 and owner[i - 1] != "train":
                left_out.extend(keep[: spec.gap])
                keep = keep[spec.gap :]
            if i + 1 < len(blocks) and owner[i + 1] != "train" and keep:
                left_out.extend(keep[-spec.gap :])
                keep = keep[: -spec.gap]
        parts[part].extend(keep)
    for part in PARTS:
        if share[part] > 0 and not parts[part]:
            raise ValueError(
                f"no {part} names: {len(ordered)} names in blocks of {spec.block} are too few"
            )
    return SplitResult({p: tuple(v) for p, v in parts.items()}, tuple(left_out))


def block_part(dataset: PairDataset, spec: BlockSplit, part: str) -> PairDataset:
    """One part (train / val / test) of a block split of `dataset`'s pair names, cut
    within the data set's own groups (MSRS: day / night)."""
    names = [rec.name for rec in dataset.records]
    group = dataset.group_of or (lambda _: "")
    chosen = set(block_split(names, spec, group)[part])
    return dataset.subset(i for i, n in enumerate(names) if n in chosen)


def group_part(dataset: PairDataset, group: str) -> PairDataset:
    """The pairs of one group (MSRS: "day" or "night")."""
    if dataset.group_of is None:
        raise ValueError(f"{dataset.fmt} data set {dataset.root} has no groups (e.g. day / night)")
    keep = [i for i, rec in enumerate(dataset.records) if dataset.group_of(rec.name) == group]
    if not keep:
        found = sorted({dataset.group_of(rec.name) for rec in dataset.records})
        raise ValueError(f"no pair of group {group!r} in {dataset.root} (groups: {found})")
    return dataset.subset(keep)
