"""A RUL model registry: a directory of artifacts by version and the versions to serve.

Layout::

    <registry>/versions/<version>/   one artifact per version (metadata.json, weights)
    <registry>/CURRENT               the version served to assets that send no ``type``
    <registry>/CURRENT.<type>        the version served to assets of that ``type``

:func:`promote` verifies an artifact, copies it in (a temporary directory renamed into place)
and then switches its ``CURRENT`` file (a temporary file renamed over it), so a reader at any
moment sees either the old or the new version, and the version it sees is complete. Versions
are never changed once in; promoting an older version again only switches ``CURRENT`` back.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from models.errors import ArtifactError, ConfigError
from models.rul.artifact import METADATA, ArtifactMetadata, load_artifact

CURRENT = "CURRENT"
VERSIONS = "versions"
_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def check_asset_type(asset_type: str | None) -> str | None:
    """``asset_type`` if it can name a ``CURRENT.<type>`` file, else ``ConfigError``.

    >>> check_asset_type("pump"), check_asset_type(None)
    ('pump', None)
    >>> check_asset_type("../x")
    Traceback (most recent call last):
    ...
    models.errors.ConfigError: bad asset type '../x': use letters, digits, '_', '.', ':' or '-'
    """
    if asset_type is not None and not _TYPE.match(asset_type):
        raise ConfigError(
            f"bad asset type {asset_type!r}: use letters, digits, '_', '.', ':' or '-'"
        )
    return asset_type


def current_file(registry: str | Path, asset_type: str | None = None) -> Path:
    """The file naming the version served to ``asset_type`` (``None``: assets without a type).

    >>> current_file("/models").name, current_file("/models", "pump").name
    ('CURRENT', 'CURRENT.pump')
    """
    name = CURRENT if check_asset_type(asset_type) is None else f"{CURRENT}.{asset_type}"
    return Path(registry) / name


def is_artifact(path: str | Path) -> bool:
    """Whether ``path`` is a single artifact (it holds ``metadata.json``) rather than a registry.

    >>> is_artifact("/nonexistent")
    False
    """
    return (Path(path) / METADATA).is_file()


def current_versions(registry: str | Path) -> dict[str | None, str]:
    """Asset type (``None``: no type) -> current version, read from the ``CURRENT*`` files.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = Path(d, "CURRENT.pump").write_text("rul-abc\\n")
    ...     current_versions(d)
    {'pump': 'rul-abc'}
    """
    root = Path(registry)
    if not root.is_dir():
        raise ArtifactError(f"no model registry at {root} (not a directory)")
    out: dict[str | None, str] = {}
    for path in sorted(root.glob(f"{CURRENT}*")):
        asset_type = path.name[len(CURRENT) + 1 :] if path.name != CURRENT else None
        if path.name != CURRENT and (path.name[len(CURRENT)] != "." or not asset_type):
            continue
        try:
            version = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:  # switched away between glob and read
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"cannot read {path}: {exc}") from None
        if version:
            out[asset_type] = version
    return out


def version_dir(registry: str | Path, version: str) -> Path:
    """Where ``version``'s artifact lives in the registry."""
    if not version or "/" in version or version.startswith("."):
        raise ArtifactError(f"bad model version {version!r} in {registry}")
    return Path(registry) / VERSIONS / version


def _write_atomic(path: Path, text: str) -> None:
    """Write then rename: a concurrent reader sees the old or the new content, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _sync_dir(path.parent)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_in(registry: Path, source: Path, version: str) -> Path:
    """Copy ``source`` to ``versions/<version>`` (temporary directory, then one rename)."""
    dest = version_dir(registry, version)
    if dest.is_dir():
        load_artifact(dest)  # already in: it must still be intact
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".incoming-{version}-{os.getpid()}-{time.monotonic_ns()}"
    try:
        shutil.copytree(source, tmp)
        for f in tmp.iterdir():
            with f.open("rb") as handle:
                os.fsync(handle.fileno())
        try:
            os.rename(tmp, dest)
        except OSError:  # a concurrent promote of the same version got there first
            if not dest.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _sync_dir(dest.parent)
    return dest


@dataclass(frozen=True)
class Promotion:
    """What :func:`promote` did: the version now current for ``asset_type``, and the one before."""

    version: str
    asset_type: str | None
    previous: str | None
    path: Path


def promote(registry: str | Path, artifact: str | Path, asset_type: str | None = None) -> Promotion:
    """Copy a verified artifact into the registry and make it current for ``asset_type``.

    A broken or incompatible artifact raises ``ArtifactError`` and changes nothing.

    >>> import tempfile
    >>> import numpy as np, torch
    >>> from models.features import Normalizer
    >>> from models.rul.artifact import Architecture, save_artifact
    >>> norm = Normalizer.fit(np.eye(2), np.zeros((2, 3)), ("s2", "s3"))
    >>> arch = Architecture(2, hidden=4, layers=1)
    >>> _ = torch.manual_seed(0)
    >>> meta = ArtifactMetadata(norm, 5, 125.0, arch, seed=0, data_sha256="0")
    >>> with tempfile.TemporaryDirectory() as d:
    ...     meta = save_artifact(f"{d}/a", arch.build(), meta)
    ...     done = promote(f"{d}/reg", f"{d}/a", asset_type="pump")
    ...     current = current_versions(f"{d}/reg")
    >>> current == {"pump": meta.version}, done.previous
    (True, None)
    """
    root = Path(registry)
    target = current_file(root, asset_type)
    source = Path(artifact)
    if is_artifact(root) or root.resolve() == source.resolve():
        raise ConfigError(f"{root} is a model artifact, not a registry")
    _, meta = load_artifact(source)
    try:
        root.mkdir(parents=True, exist_ok=True)
        previous = current_versions(root).get(asset_type)
        dest = _copy_in(root, source, meta.version)
        _write_atomic(target, meta.version + "\n")
    except OSError as exc:
        raise ArtifactError(f"cannot promote into {root}: {exc.strerror or exc}") from None
    return Promotion(meta.version, asset_type, previous, dest)


@dataclass(frozen=True)
class RegistryEntry:
    """One version of a registry as ``pmaint models list`` shows it."""

    version: str
    data_source: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    promoted_at: float = 0.0  # epoch seconds the version came in
    current_for: tuple[str | None, ...] = ()  # asset types it is current for (None: no type)
    error: str = ""  # why its metadata cannot be read (then it cannot be served)


def list_versions(registry: str | Path) -> list[RegistryEntry]:
    """The registry's versions, oldest first, from their metadata (weights are not read).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     list_versions(d)
    []
    """
    root = Path(registry)
    current = current_versions(root)
    entries = []
    folder = root / VERSIONS
    for path in folder.iterdir() if folder.is_dir() else ():
        if path.name.startswith(".") or not path.is_dir():
            continue
        serving = tuple(t for t, v in current.items() if v == path.name)
        when = path.stat().st_mtime
        try:
            meta = ArtifactMetadata.from_json((path / METADATA).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ArtifactError) as exc:
            entries.append(RegistryEntry(path.name, promoted_at=when, current_for=serving,
                                         error=str(exc)))  # fmt: skip
            continue
        entries.append(
            RegistryEntry(path.name, meta.data_source, dict(meta.metrics), when, serving)
        )
    return sorted(entries, key=lambda e: (e.promoted_at, e.version))
