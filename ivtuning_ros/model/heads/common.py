"""Small building blocks shared by the heads."""

from __future__ import annotations

from torch import nn


def conv_bn_act(cin: int, cout: int, k: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.SiLU(inplace=True),
    )


def dw_separable(channels: int) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1: a 3x3 receptive field at a fraction of the cost."""
    return nn.Sequential(
        conv_bn_act(channels, channels, 3, groups=channels), conv_bn_act(channels, channels, 1)
    )
