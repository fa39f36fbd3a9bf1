"""Remaining-useful-life forecaster: an ensemble of quantile LSTMs over windows of sensors.

Modules: ``network`` (the member LSTM and the ensemble), ``data`` (C-MAPSS and simulator
loaders, windows), ``train`` (reproducible training), ``artifact`` (save/load with JSON
metadata), ``serve`` (batched inference and the per-asset window keeper), ``device`` (CUDA when
present).
"""

from models.rul.artifact import Architecture, ArtifactMetadata, load_artifact, save_artifact
from models.rul.serve import AssetWindow, RulPrediction, RulPredictor

__all__ = [
    "Architecture",
    "ArtifactMetadata",
    "AssetWindow",
    "RulPrediction",
    "RulPredictor",
    "load_artifact",
    "save_artifact",
]
