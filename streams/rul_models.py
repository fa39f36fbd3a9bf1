"""The RUL models a worker serves, and their reload from a model registry.

``PMAINT_RUL_MODEL`` names an artifact (one model for every asset) or a registry
(:mod:`models.rul.registry`: one model per asset type, ``CURRENT`` for assets without a type).
A registry is checked every ``PMAINT_RUL_RELOAD_S`` in a worker thread; changed versions are
loaded there and handed over as a new :class:`ServingModels`, which the pipeline takes between
batches. A version that does not load is refused with one log line and the old one keeps serving.
"""

from __future__ import annotations

import logging
from pathlib import Path

from models.errors import ArtifactError, PmaintError
from models.rul.registry import current_versions, is_artifact, version_dir
from models.rul.serve import RulPredictor
from streams.core.served_models import ServedModel, ServingModels, assets_of

log = logging.getLogger("pmaint.models")


class ModelSource:
    """Loads the models ``PMAINT_RUL_MODEL`` names and, for a registry, notices new versions.

    ``check`` (blocking: run it in a worker thread) returns a new :class:`ServingModels` when a
    ``CURRENT`` file changed and the version it names loads, ``None`` when nothing changed.
    """

    def __init__(self, path: Path, device: str = "auto") -> None:
        self.path = path
        self.device = device
        self.registry = not is_artifact(path)
        self.serving = ServingModels()
        self._refused: dict[str | None, str] = {}  # version refused per type: logged once
        self._unreadable = ""  # why the registry could not be read: logged once

    def load(self) -> ServingModels:
        """The models to start with. A broken artifact raises ``ArtifactError``; in a registry
        a broken version is refused (logged) and its asset type has no model."""
        if not self.registry:
            self.serving = ServingModels.single(RulPredictor.load(self.path, self.device))
        else:
            if not self.path.is_dir():
                raise ArtifactError(f"no RUL model artifact or registry at {self.path}")
            self.serving = self.check() or self.serving
            if not self.serving:
                log.warning("model registry %s has no usable current model yet", self.path)
        for asset_type, version in self.serving.versions().items():
            who = "every asset" if self.serving.every_asset else assets_of(asset_type)
            log.info("serving RUL model %s for %s", version, who)
        return self.serving

    def check(self) -> ServingModels | None:
        """Re-read the registry's ``CURRENT`` files; the new models if any changed."""
        if not self.registry:
            return None
        try:
            wanted = current_versions(self.path)
        except PmaintError as exc:
            if str(exc) != self._unreadable:
                log.warning("model registry unreadable (%s); models unchanged", exc)
            self._unreadable = str(exc)
            return None
        self._unreadable = ""
        old = self.serving.by_type
        models = {t: m for t, m in old.items() if t in wanted}
        for asset_type, version in wanted.items():
            if asset_type in models and models[asset_type].version == version:
                continue
            if self._refused.get(asset_type) == version:
                continue
            try:
                predictor = RulPredictor.load(version_dir(self.path, version), self.device)
            except PmaintError as exc:
                self._refused[asset_type] = version
                still = models[asset_type].version if asset_type in models else "no model"
                log.warning(
                    "refused RUL model %s for %s: %s (still serving %s)",
                    version, assets_of(asset_type), exc, still,
                )  # fmt: skip
                continue
            self._refused.pop(asset_type, None)
            models[asset_type] = ServedModel.of(predictor)
        if {t: m.version for t, m in models.items()} == self.serving.versions():
            return None
        for asset_type in old.keys() - models.keys():
            log.info("no RUL model for %s any more (anomaly detection only)", assets_of(asset_type))
        self.serving = ServingModels(models)
        return self.serving
