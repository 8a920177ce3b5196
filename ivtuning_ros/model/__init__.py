"""The IV-tuning model: frozen backbone + Modality-Aware Prompter + task heads."""

from ivtuning_ros.model.config import (
    HeadConfig,
    ModelConfig,
    PrompterConfig,
    available_presets,
    load_model_config,
)
from ivtuning_ros.model.ivtuning import InferenceModule, IVTuningModel, build_model

__all__ = [
    "HeadConfig",
    "IVTuningModel",
    "InferenceModule",
    "ModelConfig",
    "PrompterConfig",
    "available_presets",
    "build_model",
    "load_model_config",
]
