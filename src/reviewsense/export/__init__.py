"""Export stage: the one model folder format (JSON + safetensors), written atomically."""

from .bundle import load_model, read_manifest, save_model

__all__ = ["load_model", "read_manifest", "save_model"]
