"""torch.export of the model's inference module: the one graph every compiled backend uses."""

from __future__ import annotations

import torch
from torch import nn

MAX_BATCH = 64


def example_inputs(
    input_hw: tuple[int, int],
    batch: int = 1,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Neutral (mid-grey) inputs of the engine's shape, as a missing camera would give."""
    h, w = input_hw
    rgb = torch.full((batch, 3, h, w), 0.5, device=device, dtype=dtype)
    thermal = torch.full((batch, 1, h, w), 0.5, device=device, dtype=dtype)
    return rgb, thermal


def export_program(
    module: nn.Module, input_hw: tuple[int, int], dynamic_batch: bool, device: str = "cpu"
) -> torch.export.ExportedProgram:
    """Export `forward(rgb, thermal)` with a fixed image size (the engine's input size).

    With `dynamic_batch` the batch dimension stays symbolic (1..MAX_BATCH); the example
    batch is 2 because torch.export specialises a size-1 example to a constant 1.
    """
    module = module.eval().to(device)
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        args = example_inputs(input_hw, 2, device)
        shapes = ({0: batch}, {0: batch})
    else:
        args = example_inputs(input_hw, 1, device)
        shapes = None
    with torch.no_grad():
        return torch.export.export(module, args, dynamic_shapes=shapes, strict=False)
