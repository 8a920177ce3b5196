"""Named imaging conditions for the synthetic night scenes (frozen parameter sets).

Fog follows Koschmieder's law I = J*t + A*(1-t), t = exp(-beta*d): `fog_beta` is the
extinction coefficient of visible light in 1/m (meteorological visibility is about
3.912 / beta). Long-wave infrared scatters far less in fog, hence `thermal_beta_ratio`.
Training on some conditions and testing on another (e.g. ``patchy_fog``) is the point of
having several.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Condition:
    """Everything about weather and lighting that changes how a scene is imaged."""

    name: str
    fog_beta: float  # visible extinction, 1/m
    fog_model: Literal["homogeneous", "patchy"] = "homogeneous"
    fog_patchiness: float = 0.0  # relative amplitude of beta's spatial variation (patchy)
    fog_patch_scale: float = 0.25  # size of fog patches, fraction of image width
    airlight: tuple[float, float, float] = (0.010, 0.011, 0.016)  # linear RGB of the night sky
    glow: float = 0.0  # how strongly fog scatters light sources into halos
    ambient: float = 0.010  # moon / sky-glow illuminance, linear
    streetlight: float = 25.0  # street-lamp intensity (linear units at 1 m)
    streetlight_on: float = 0.8  # probability that a lamp is lit
    ego_headlights: float = 0.7  # probability that the ego vehicle's headlights are on
    exposure: float = 3.0  # camera gain applied to linear radiance
    read_noise: float = 0.006  # sensor read noise (linear, after gain)
    shot_noise: float = 0.002  # Poisson-like noise factor (variance per unit signal)
    rain: float = 0.0  # density of rain streaks (0 = none)
    wet_road: float = 0.0  # strength of light reflections on a wet road
    glare: float = 0.15  # lens bloom around bright lights
    thermal_beta_ratio: float = 0.03  # LWIR extinction / visible extinction
    thermal_contrast: float = 1.0  # < 1 when rain cools and wets every surface
    thermal_noise: float = 0.12  # sensor NETD-like noise, degrees C

    def __post_init__(self) -> None:
        if self.fog_beta < 0 or self.fog_patchiness < 0 or self.exposure <= 0:
            raise ValueError(f"condition {self.name!r}: negative fog or non-positive exposure")
        if self.fog_model not in ("homogeneous", "patchy"):
            raise ValueError(f"condition {self.name!r}: unknown fog_model {self.fog_model!r}")


CONDITIONS: dict[str, Condition] = {
    c.name: c
    for c in (
        Condition("clear_night", fog_beta=0.002),
        Condition(
            "light_fog",
            fog_beta=0.018,  # visibility about 220 m
            airlight=(0.030, 0.030, 0.032),
            glow=0.5,
            ambient=0.012,
        ),
        Condition(
            "dense_fog",
            fog_beta=0.07,  # visibility about 55 m
            airlight=(0.055, 0.054, 0.052),
            glow=1.0,
            ambient=0.014,
            glare=0.25,
            thermal_noise=0.15,
        ),
        Condition(
            "patchy_fog",  # heterogeneous fog: banks and clear gaps, a second fog model
            fog_beta=0.04,
            fog_model="patchy",
            fog_patchiness=0.9,
            fog_patch_scale=0.3,
            airlight=(0.045, 0.040, 0.034),  # warmer: sodium light scattered in the fog
            glow=0.8,
            ambient=0.012,
        ),
        Condition(
            "rain_glare",
            fog_beta=0.008,
            airlight=(0.018, 0.018, 0.022),
            glow=0.3,
            rain=1.0,
            wet_road=1.0,
            glare=0.6,
            read_noise=0.008,
            thermal_contrast=0.65,
            thermal_noise=0.15,
        ),
    )
}


def get_condition(name: str) -> Condition:
    """Look up a named condition; the error lists the valid names."""
    try:
        return CONDITIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown condition {name!r}; choose from {', '.join(sorted(CONDITIONS))}"
        ) from None
