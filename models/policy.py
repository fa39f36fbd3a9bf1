"""Detector settings per group of assets, from a TOML policy file (``PMAINT_POLICY_FILE``).

Assets differ: a pump is not a web server. A policy file holds optional ``[defaults]`` (applied
to every asset) and ``[[rule]]`` tables, each matching assets by an ``assets`` glob on the
asset id and/or a ``type`` (the optional ``type`` field of telemetry records); the first rule
that matches an asset gives its settings on top of the defaults. Keys are the field names of
:class:`models.monitor.MonitorConfig`; anything not named keeps its built-in default::

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
from models.monitor import MonitorConfig

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
        unknown = set(doc) - {"defaults", "rule"}
        if unknown:
            raise ConfigError(
                f"{origin}: unknown tables {sorted(unknown)} (use [defaults], [[rule]])"
            )
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
        return cls(defaults, tuple(rules))

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
