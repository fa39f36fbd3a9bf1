"""The RUL models a worker serves: one :class:`ServedModel` per asset type, or one for all."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from models.rul.artifact import ArtifactMetadata
from models.rul.serve import RulPredictor


def inputs_key(meta: ArtifactMetadata) -> str:
    """Identifies how a model turns records into input rows: equal keys, same windows."""
    spec = {
        "scaling": meta.normalizer.to_dict(),
        "window": meta.window,
        "trend": meta.trend,
        "age_scale": meta.age_scale,
    }
    return json.dumps(spec, sort_keys=True)


@dataclass(frozen=True)
class ServedModel:
    """One model in service and the key of its inputs (an asset's window carries over to a
    new model with the same key, and starts afresh otherwise)."""

    predictor: RulPredictor
    key: str

    @classmethod
    def of(cls, predictor: RulPredictor) -> ServedModel:
        return cls(predictor, inputs_key(predictor.metadata))

    @property
    def version(self) -> str:
        return self.predictor.version


def assets_of(asset_type: str | None) -> str:
    """Which assets a model of ``asset_type`` serves, for log lines."""
    return "assets without a type" if asset_type is None else f"asset type {asset_type!r}"


@dataclass(frozen=True)
class ServingModels:
    """The models of a worker: by asset type (``None``: assets without a type), or one model
    for every asset (``every_asset``, when ``PMAINT_RUL_MODEL`` is a single artifact)."""

    by_type: Mapping[str | None, ServedModel] = field(default_factory=dict)
    every_asset: bool = False

    @classmethod
    def single(cls, predictor: RulPredictor | None) -> ServingModels:
        """One model for every asset (none: no forecasts)."""
        if predictor is None:
            return cls()
        return cls({None: ServedModel.of(predictor)}, every_asset=True)

    def for_type(self, asset_type: str | None) -> ServedModel | None:
        """The model for an asset of ``asset_type``; ``None``: anomaly detection only."""
        return self.by_type.get(None if self.every_asset else asset_type)

    def versions(self) -> dict[str | None, str]:
        """Asset type -> version served."""
        return {t: m.version for t, m in self.by_type.items()}

    def __bool__(self) -> bool:
        return bool(self.by_type)
