"""Detector settings per group of assets, from a TOML policy file (``PMAINT_POLICY_FILE``).

Assets differ: a pump is not a web server. A policy file holds optional ``[defaults]`` (applied
to every asset) and ``[[rule]]`` tables, each matching assets by an ``assets`` glob on the
asset id and/or a ``type``; the first rule that matches an asset gives its settings on top of
the defaults. Keys are the field names of :class:`models.monitor_config.MonitorConfig`; anything not
named keeps its built-in default. An asset's type is the ``type`` field of its records, else
the first glob of the ``[types]`` table that matches its id; the same type picks its detector
rule and its RUL model (:mod:`streams.rul_models`)::

    [types]
    "press-*" = "press"
    "pump-*" = "pump"

    [defaults]
    hold = 12

    [[rule]]
    assets = "pump-*"
    detectors = ["spike", "shift", "variance", "deviation", "correlation"]
    spike_margin = 0.2

    [[rule]]
    type = "web-server"
    detectors = ["spike", "shift"]
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from models.errors import ConfigError
from models.monitor_config import MonitorConfig

_FIELDS = {f.name for f in fields(MonitorConfig)}


@dataclass(frozen=True)
class Rule:
    """Assets a rule applies to, and its monitor settings."""

    assets: str | None
    type: str | None
    config: MonitorConfig

    def matches(self, asset_id: str, asset_type: str | None) -> bool:
        if self.assets is not None and not fnmatchcase(asset_id, self.assets):
            return False
        return self.type is None or self.type == asset_type


@dataclass(frozen=True)
class DetectorPolicy:
    """Monitor settings by asset: the first matching rule, else the defaults.

    Examples
    --------
    >>> p = DetectorPolicy.from_toml('[[rule]]\\nassets = "pump-*"\\nhold = 3\\n')
    >>> p.config_for("pump-7", None).hold, p.config_for("fan-1", None).hold
    (3, 12)
    """

    defaults: MonitorConfig = field(default_factory=MonitorConfig)
    rules: tuple[Rule, ...] = ()
    types: tuple[tuple[str, str], ...] = ()  # (asset-id glob, type), first match wins

    def type_of(self, asset_id: str, record_type: str | None = None) -> str | None:
        """The type of asset ``asset_id``: ``record_type`` (the record's own ``type``) when
        given, else that of the first ``[types]`` glob matching the id, else ``None``.

        >>> p = DetectorPolicy.from_toml('[types]\\n"press-*" = "press"\\n"*" = "other"\\n')
        >>> p.type_of("press-4"), p.type_of("press-4", "pump"), p.type_of("fan-1")
        ('press', 'pump', 'other')
        """
        if record_type:
            return record_type
        return next((t for glob, t in self.types if fnmatchcase(asset_id, glob)), None)

    def config_for(self, asset_id: str, asset_type: str | None) -> MonitorConfig:
        """The settings of asset ``asset_id`` (of type ``asset_type``, may be None)."""
        for rule in self.rules:
            if rule.matches(asset_id, asset_type):
                return rule.config
        return self.defaults

    @classmethod
    def from_toml(
        cls, text: str, base: MonitorConfig | None = None, origin: str = "policy"
    ) -> DetectorPolicy:
        """Parse a policy file's text over ``base`` settings.

        Raises
        ------
        ConfigError
            If the TOML is malformed, a key is unknown or a value is invalid.
        """
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{origin}: not TOML ({exc})") from None
        unknown = set(doc) - {"defaults", "rule", "types"}
        if unknown:
            raise ConfigError(
                f"{origin}: unknown tables {sorted(unknown)} (use [types], [defaults], [[rule]])"
            )
        types = doc.get("types", {})
        if not isinstance(types, dict) or not all(isinstance(t, str) and t for t in types.values()):
            raise ConfigError(f'{origin} [types]: entries are "asset-id glob" = "type"')
        defaults = _settings(
            base or MonitorConfig(), doc.get("defaults", {}), f"{origin} [defaults]"
        )
        rules = []
        for i, entry in enumerate(doc.get("rule", []), 1):
            where = f"{origin} rule {i}"
            table = dict(entry)
            assets, asset_type = table.pop("assets", None), table.pop("type", None)
            if assets is None and asset_type is None:
                raise ConfigError(f"{where}: needs 'assets' (a glob) or 'type'")
            if not all(v is None or isinstance(v, str) for v in (assets, asset_type)):
                raise ConfigError(f"{where}: 'assets' and 'type' must be strings")
            rules.append(Rule(assets, asset_type, _settings(defaults, table, where)))
        return cls(defaults, tuple(rules), tuple(types.items()))

    @classmethod
    def load(cls, path: str | Path, base: MonitorConfig | None = None) -> DetectorPolicy:
        """Read a policy file (see :meth:`from_toml`)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read policy file {path}: {exc.strerror}") from None
        return cls.from_toml(text, base, str(path))


def _settings(base: MonitorConfig, table: dict[str, Any], where: str) -> MonitorConfig:
    unknown = set(table) - _FIELDS
    if unknown:
        raise ConfigError(f"{where}: unknown settings {sorted(unknown)}")
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
    try:
        return replace(base, **values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
