"""Data files read the same whether stored plain or gzip-compressed (``name`` or ``name.gz``).

The repository's reference data lives gzip-compressed in ``data/`` (see ``data/README.md``);
every loader goes through :func:`read_bytes` so users may pass either form.
"""

from __future__ import annotations

import gzip
from pathlib import Path

REFERENCE_DATA = Path(__file__).resolve().parents[1] / "data"
"""The repository's ``data/`` directory: C-MAPSS FD001 and NAB, with provenance."""


def resolve(path: str | Path) -> Path:
    """``path`` if it exists, else its ``.gz`` twin if that exists, else ``path`` unchanged.

    >>> import tempfile, gzip, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = gzip.open(d / "a.txt.gz", "wt").write("x")
    >>> resolve(d / "a.txt").name
    'a.txt.gz'
    >>> resolve(d / "b.txt").name
    'b.txt'
    """
    p = Path(path)
    if not p.exists() and p.suffix != ".gz":
        gz = p.with_name(p.name + ".gz")
        if gz.exists():
            return gz
    return p


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes, decompressed when it is gzip (by its ``.gz`` name or its magic bytes).

    >>> import tempfile, gzip, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = gzip.open(d / "a.csv.gz", "wb").write(b"t,v\\n")
    >>> read_bytes(d / "a.csv")
    b't,v\\n'
    """
    raw = resolve(path).read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """The file's text (see :func:`read_bytes`)."""
    return read_bytes(path).decode(encoding)


def suffix(path: str | Path) -> str:
    """The format suffix, ignoring a trailing ``.gz``, lower-cased.

    >>> suffix("history.CSV.gz"), suffix("train_FD001.txt")
    ('.csv', '.txt')
    """
    p = Path(path)
    if p.suffix.lower() == ".gz":
        p = p.with_suffix("")
    return p.suffix.lower()
