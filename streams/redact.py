"""Credentials inside URLs (``http://user:pw@host``) never reach a log line or the terminal.

Every URL pmaint prints or logs goes through :func:`redact_url` (one URL) or
:func:`redact_text` (a message that may quote URLs, such as an exception's text), and clients
get credential-free URLs plus the credentials apart (:func:`split_credentials`).
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

# scheme://userinfo@ — userinfo is whatever precedes the first "@" of the authority
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#@\s]*)@")


def _mask(match: re.Match[str]) -> str:
    user, sep, _ = match.group("userinfo").partition(":")
    return f"{match.group('scheme')}{user}{':***' if sep else ''}@"


def redact_text(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``.

    >>> redact_text("InfluxDB at http://admin:s3cret@influx:8086/ping: refused")
    'InfluxDB at http://admin:***@influx:8086/ping: refused'
    >>> redact_text("kafka://broker:9092 and https://token@x.io")
    'kafka://broker:9092 and https://token@x.io'
    """
    return _USERINFO.sub(_mask, text)


def redact_url(url: str) -> str:
    """One URL with its password masked (``http://user:***@host``).

    >>> redact_url("http://user:pw@host:8086")
    'http://user:***@host:8086'
    >>> redact_url("http://host:8086")
    'http://host:8086'
    """
    return redact_text(url)


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``(url without userinfo, user, password)``, the user and password percent-decoded.

    >>> split_credentials("http://ad%40min:p%3Aw@influx:8086/x")
    ('http://influx:8086/x', 'ad@min', 'p:w')
    >>> split_credentials("http://influx:8086")
    ('http://influx:8086', None, None)
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    clean = urlunsplit(parts._replace(netloc=host))
    return clean, unquote(user), unquote(password) if sep else None
