"""RUL model artifacts: one directory per model version, weights + JSON metadata.

Layout::

    <dir>/weights.safetensors   tensors only (safetensors: loading never runs code)
    <dir>/metadata.json         format, version, features, scaling, regimes, window, cap, trend,
                                age scale, quantiles, band scale, architecture (members of the
                                ensemble), seed, data sha256, metrics, weights sha256,
                                RUL unit (cycles or hours), asset type, in-domain measure

The version is derived from the weights' content (``rul-<sha256[:12]>``), so the same training
gives the same version. Any missing, corrupt or incompatible piece raises one ``ArtifactError``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from models.errors import ArtifactError, DataError
from models.features import InputSpec, Normalizer
from models.rul.domain import DomainModel
from models.rul.network import QuantileEnsemble, QuantileLSTM

FORMAT = "pmaint-rul"
FORMAT_VERSION = 3  # 3: ensembles, trend and age channels, band scale
WEIGHTS = "weights.safetensors"
METADATA = "metadata.json"


@dataclass(frozen=True)
class Architecture:
    """Hyper-parameters that rebuild the network: an ensemble of ``members`` quantile LSTMs.

    >>> len(Architecture(n_features=14, members=3).build().members)
    3
    """

    n_features: int
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    hidden: int = 48
    layers: int = 2
    dropout: float = 0.1
    output_scale: float = 125.0
    members: int = 1

    def member(self) -> QuantileLSTM:
        """One freshly initialised member."""
        return QuantileLSTM(
            self.n_features,
            quantiles=self.quantiles,
            hidden=self.hidden,
            layers=self.layers,
            dropout=self.dropout,
            output_scale=self.output_scale,
        )

    def build(self) -> QuantileEnsemble:
        """A freshly initialised network with these hyper-parameters."""
        return QuantileEnsemble([self.member() for _ in range(self.members)])


@dataclass(frozen=True)
class ArtifactMetadata:
    """Everything needed to use and trace a trained RUL model (stored as ``metadata.json``).

    >>> from models.features import InputSpec, Normalizer
    >>> norm = Normalizer.fit([[0.0], [1.0]], [[0.0, 0, 0], [0.0, 0, 0]], ("s2",))
    >>> meta = ArtifactMetadata(norm, 30, 125.0, Architecture(1), seed=0, data_sha256="0" * 64)
    >>> ArtifactMetadata.from_json(meta.to_json()) == meta
    True
    """

    normalizer: Normalizer
    window: int
    cap: float
    architecture: Architecture
    seed: int
    data_sha256: str
    data_source: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    weights_sha256: str = ""
    trend: float = 0.0
    age_scale: float = 0.0
    band_scale: float = 1.0
    rul_unit: str = "cycles"
    asset_type: str = ""
    domain: DomainModel | None = None

    @property
    def inputs(self) -> InputSpec:
        """How raw rows become this model's input rows."""
        return InputSpec(self.normalizer, self.window, self.trend, self.age_scale)

    @property
    def features(self) -> tuple[str, ...]:
        """Input feature names, in order (see :attr:`InputSpec.names`)."""
        return self.inputs.names

    def to_json(self) -> str:
        """The metadata document (pretty JSON)."""
        arch = dataclasses.asdict(self.architecture)
        arch["quantiles"] = list(self.architecture.quantiles)
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "version": self.version,
            "features": list(self.features),
            "quantiles": list(self.architecture.quantiles),
            "regimes": self.normalizer.n_regimes,
            "scaling": self.normalizer.to_dict(),
            "window": self.window,
            "cap": self.cap,
            "trend": self.trend,
            "age_scale": self.age_scale,
            "band_scale": self.band_scale,
            "rul_unit": self.rul_unit,
            "asset_type": self.asset_type,
            "domain": self.domain.to_dict() if self.domain is not None else None,
            "architecture": arch,
            "seed": self.seed,
            "data_source": self.data_source,
            "data_sha256": self.data_sha256,
            "weights_sha256": self.weights_sha256,
            "metrics": self.metrics,
            "training": self.training,
        }
        return json.dumps(doc, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ArtifactMetadata:
        """Parse and validate a metadata document; raises ``ArtifactError``."""
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ArtifactError(f"corrupt metadata.json: not valid JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ArtifactError("metadata.json is not a pmaint RUL model artifact")
        if doc.get("format_version") != FORMAT_VERSION:
            raise ArtifactError(
                f"incompatible artifact format version {doc.get('format_version')!r} "
                f"(this pmaint reads version {FORMAT_VERSION}; train the model again)"
            )
        try:
            return cls._from_doc(doc)
        except (KeyError, TypeError, ValueError, DataError) as exc:
            raise ArtifactError(f"corrupt metadata.json: {type(exc).__name__}: {exc}") from None

    @classmethod
    def _from_doc(cls, doc: Mapping[str, Any]) -> ArtifactMetadata:
        a = doc["architecture"]
        arch = Architecture(
            n_features=int(a["n_features"]),
            quantiles=tuple(float(q) for q in a["quantiles"]),
            hidden=int(a["hidden"]),
            layers=int(a["layers"]),
            dropout=float(a["dropout"]),
            output_scale=float(a["output_scale"]),
            members=int(a["members"]),
        )
        if arch.members < 1:
            raise ValueError(f"an ensemble needs at least one member, got {arch.members}")
        norm = Normalizer.from_dict(doc["scaling"])
        band_scale = float(doc["band_scale"])
        if not 0 < band_scale < float("inf"):
            raise ValueError(f"bad band scale {band_scale}")
        rul_unit = str(doc.get("rul_unit", "cycles"))
        if rul_unit not in ("cycles", "hours"):
            raise ValueError(f"unknown RUL unit {rul_unit!r}")
        domain = DomainModel.from_dict(doc["domain"]) if doc.get("domain") else None
        meta = cls(
            normalizer=norm,
            window=int(doc["window"]),
            cap=float(doc["cap"]),
            architecture=arch,
            seed=int(doc["seed"]),
            data_sha256=str(doc["data_sha256"]),
            data_source=str(doc.get("data_source", "")),
            metrics={str(k): float(v) for k, v in dict(doc.get("metrics", {})).items()},
            training=dict(doc.get("training", {})),
            version=str(doc["version"]),
            weights_sha256=str(doc["weights_sha256"]),
            trend=float(doc["trend"]),
            age_scale=float(doc["age_scale"]),
            band_scale=band_scale,
            rul_unit=rul_unit,
            asset_type=str(doc.get("asset_type", "")),
            domain=domain,
        )
        if domain is not None and domain.n_sensors != len(norm.sensors):
            raise ValueError("in-domain measure and scaling disagree")
        if list(meta.features) != list(doc["features"]) or len(meta.features) != arch.n_features:
            raise ValueError("features, scaling and architecture disagree")
        return meta


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_artifact(
    directory: str | Path, model: QuantileEnsemble, meta: ArtifactMetadata
) -> ArtifactMetadata:
    """Write ``model`` and ``meta`` into ``directory``; return the metadata as stored.

    The stored metadata carries the weights' sha256 and, unless ``meta.version`` is set, the
    content-derived version ``rul-<sha256[:12]>``.

    >>> import tempfile
    >>> from models.features import InputSpec, Normalizer
    >>> norm = Normalizer.fit([[0.0], [1.0]], [[0.0, 0, 0], [0.0, 0, 0]], ("s2",))
    >>> arch = Architecture(1, hidden=4, layers=1)
    >>> meta = ArtifactMetadata(norm, 30, 125.0, arch, seed=0, data_sha256="0" * 64)
    >>> _ = torch.manual_seed(0)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     stored = save_artifact(d, arch.build(), meta)
    ...     _, loaded = load_artifact(d)
    >>> loaded == stored, stored.version.startswith("rul-")
    (True, True)
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    weights = save_tensors(state, metadata={"format": FORMAT})
    digest = hashlib.sha256(weights).hexdigest()
    stored = dataclasses.replace(
        meta, weights_sha256=digest, version=meta.version or f"rul-{digest[:12]}"
    )
    _write_atomic(d / WEIGHTS, weights)
    _write_atomic(d / METADATA, stored.to_json().encode())
    return stored


def load_artifact(
    directory: str | Path, device: torch.device | str = "cpu"
) -> tuple[QuantileEnsemble, ArtifactMetadata]:
    """Load and verify an artifact -> ``(model in eval mode on device, metadata)``.

    Only JSON and safetensors are read; nothing in the artifact is executed. Raises
    ``ArtifactError`` with one clear message when anything is missing, corrupt or incompatible.

    >>> load_artifact("/nonexistent")
    Traceback (most recent call last):
    ...
    models.errors.ArtifactError: no RUL model artifact at /nonexistent (metadata.json missing)
    """
    d = Path(directory)
    try:
        text = (d / METADATA).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(f"no RUL model artifact at {d} (metadata.json missing)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"cannot read {d / METADATA}: {exc}") from None
    meta = ArtifactMetadata.from_json(text)
    try:
        weights = (d / WEIGHTS).read_bytes()
    except OSError:
        raise ArtifactError(f"artifact {d} has no readable {WEIGHTS}") from None
    if hashlib.sha256(weights).hexdigest() != meta.weights_sha256:
        raise ArtifactError(f"{d / WEIGHTS} does not match its metadata (corrupt or replaced)")
    try:
        state = load_tensors(weights)
        model = meta.architecture.build()
        model.load_state_dict(state, strict=True)
    except Exception as exc:  # safetensors and torch raise several types for bad content
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ArtifactError(f"{d / WEIGHTS} does not fit the stored architecture: {msg}") from None
    if not all(bool(torch.isfinite(t).all()) for t in state.values()):
        raise ArtifactError(f"{d / WEIGHTS} holds non-finite weights")
    return model.to(device).eval(), meta
