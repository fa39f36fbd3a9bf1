"""InfluxDB output: line protocol over HTTP to the v2 API (2.x/3.x/Cloud) or the v1 API (1.x).

``await sink.write(points)`` encodes the points once, queues them in a bounded buffer and returns
only when the server accepted them (HTTP 2xx): a worker commits its Kafka offsets after that, and a
full buffer makes writers wait (backpressure) instead of dropping points. One background task sends
gzip batches of up to ``batch_size`` lines, waiting up to ``linger_ms`` for a batch to fill. The
linger is short (5 ms) because every writer awaits its own ack: a worker writing one consumed batch
at a time would otherwise wait out the whole linger per batch (200 ms capped a worker at ~2.4k
points/s in ``benchmarks/sink.py``); writers that run concurrently still share a request. While a
:meth:`InfluxSink.flush` waits, nothing lingers: its caller has added all it had.
Connection errors, timeouts, 5xx, 429 (and 401/403/404, which an operator can fix) are retried
forever with exponential backoff, jitter and ``Retry-After``; a 400 batch is split in halves until
the rejected lines are isolated, and those go to a JSON-lines dead-letter file with the server's
reason. Secrets only ever travel in request headers.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlencode

import aiohttp

from models.errors import ConfigError, PmaintError
from streams.core.line_protocol import Point, encode
from streams.linger import linger
from streams.redact import redact_text, split_credentials
from streams.retry import Backoff
from streams.settings import Settings

log = logging.getLogger(__name__)

Api = Literal["v1", "v2"]
_RETRY = frozenset({401, 403, 404, 408, 429})
_WRITE_HEADERS = {"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": "gzip"}


@dataclass(frozen=True)
class InfluxTarget:
    """Where and how to write; ``auth`` is the Authorization header (never logged)."""

    api: Api
    url: str
    query: dict[str, str]
    auth: str | None = field(default=None, repr=False)
    version: str = "unknown"

    @property
    def write_url(self) -> str:
        path = "/write" if self.api == "v1" else "/api/v2/write"
        return f"{self.url}{path}?{urlencode({**self.query, 'precision': 'ms'})}"

    def describe(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.query.items())
        return f"InfluxDB {self.version} at {self.url}: {self.api} API ({where})"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def ping(url: str, timeout_s: float = 5.0) -> str | None:
    """``GET /ping``: the ``X-Influxdb-Version`` header (None if absent); PmaintError if down.

    Credentials inside ``url`` are sent as basic auth and never shown in an error."""
    clean, user, password = split_credentials(url.rstrip("/"))
    request = urllib.request.Request(f"{clean}/ping")
    if user is not None:
        request.add_header("Authorization", _basic(user, password or ""))
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as r:
            return r.headers.get("X-Influxdb-Version") or None
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):  # some 3.x servers want a token even for /ping
            return exc.headers.get("X-Influxdb-Version") or None
        raise PmaintError(f"InfluxDB at {clean}: /ping answered HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        raise PmaintError(f"InfluxDB at {clean}: {redact_text(str(exc))}") from None


def target_from_settings(settings: Settings, version: str | None = None) -> InfluxTarget:
    """Build the write target; with ``influx_api='auto'`` the API follows ``/ping``'s version."""
    s = settings
    if not s.influx_url:
        raise ConfigError("PMAINT_INFLUX_URL is not set")
    # user:password inside the URL become basic auth; the target's URL never holds them
    url, url_user, url_password = split_credentials(s.influx_url.rstrip("/"))
    api: Api
    if s.influx_api != "auto":
        api = s.influx_api
    else:
        version = version or ping(s.influx_url)
        major = (version or "").lstrip("v").split(".")[0]
        if major.isdigit():
            api = "v1" if major == "1" else "v2"
        elif s.influx_bucket or s.influx_database:
            api = "v2" if s.influx_bucket else "v1"
        else:
            raise ConfigError("InfluxDB version unknown: set PMAINT_INFLUX_API")
    if api == "v1":
        if not s.influx_database:
            raise ConfigError("PMAINT_INFLUX_DATABASE is needed for the InfluxDB v1 API")
        query = {"db": s.influx_database}
        if s.influx_retention_policy:
            query["rp"] = s.influx_retention_policy
        auth = None
        if s.influx_username:
            password = s.influx_password.get_secret_value() if s.influx_password else ""
            auth = _basic(s.influx_username, password)
    else:
        if not s.influx_bucket:
            raise ConfigError("PMAINT_INFLUX_BUCKET is needed for the InfluxDB v2 API")
        query = {"bucket": s.influx_bucket} | ({"org": s.influx_org} if s.influx_org else {})
        auth = f"Token {s.influx_token.get_secret_value()}" if s.influx_token else None
    if auth is None and url_user is not None:
        auth = _basic(url_user, url_password or "")
    return InfluxTarget(api, url, query, auth, (version or "unknown").lstrip("v"))


def check(settings: Settings) -> str:
    """For ``pmaint check``: which InfluxDB version and API answered (PmaintError if none)."""
    if not settings.influx_url:
        raise ConfigError("PMAINT_INFLUX_URL is not set")
    version = ping(settings.influx_url)
    return target_from_settings(settings, version or "unknown").describe()


@dataclass
class _Pending:
    lines: list[bytes]
    done: asyncio.Future[None]
    taken: int = 0
    left: int = 0


@dataclass
class SinkStats:
    written: int = 0
    dead_lettered: int = 0
    retries: int = 0
    requests: int = 0
    last_error: str | None = None


class InfluxSink:
    """Batched, retrying, backpressured writer; use ``async with`` or ``start()``/``close()``."""

    def __init__(
        self,
        target: InfluxTarget,
        *,
        batch_size: int = 5000,
        linger_ms: float = 5,
        max_buffer: int = 50_000,
        timeout_s: float = 10.0,
        backoff_s: float = 0.2,
        backoff_max_s: float = 30.0,
        gzip_level: int = 1,
        dead_letter_dir: Path = Path(".pmaint/dead-letter"),
        create_database: bool = True,
    ) -> None:
        if batch_size < 1 or max_buffer < batch_size:
            raise ConfigError("InfluxSink: need 1 <= batch_size <= max_buffer")
        self.target = target
        self.batch_size, self.linger_s, self.max_buffer = batch_size, linger_ms / 1000, max_buffer
        self.timeout_s, self.backoff_s, self.backoff_max_s = timeout_s, backoff_s, backoff_max_s
        self.gzip_level, self.create_database = gzip_level, create_database
        self.dead_letter_path = dead_letter_dir / "influx.jsonl"
        self.stats = SinkStats()
        self.buffered = 0  # lines accepted by write() and not yet acknowledged
        self._queue: deque[_Pending] = deque()
        self._unacked: set[asyncio.Future[None]] = set()
        self._flushing = 0  # flush() calls waiting: queued lines go without a linger
        self._wake = asyncio.Event()
        self._space = asyncio.Condition()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **options: object) -> InfluxSink:
        """A sink for the configured server (pings it when ``influx_api`` is ``auto``).

        Dead letters go under ``settings.data_dir / "dead-letter"`` unless given.
        """
        options.setdefault("dead_letter_dir", settings.data_dir / "dead-letter")
        return cls(target_from_settings(settings), **options)  # type: ignore[arg-type]

    async def __aenter__(self) -> InfluxSink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        headers = {"Authorization": self.target.auth} if self.target.auth else {}
        self._session = aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
        )
        if self.target.api == "v1" and self.create_database:
            await self._create_database()
        self._task = asyncio.create_task(self._run(), name="influx-sink")

    async def stop(self) -> None:
        await self.close()

    async def close(self) -> None:
        """Flush what is buffered (waiting for the server as long as it takes), then stop."""
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def flush(self) -> None:
        """Send what is buffered now (no linger) and wait until every line is acknowledged or
        dead-lettered."""
        if self._unacked:
            self._flushing += 1
            self._wake.set()
            try:
                await asyncio.gather(*list(self._unacked))
            finally:
                self._flushing -= 1

    async def write(self, points: Iterable[Point]) -> None:
        """Queue ``points`` and return once the server accepted all of them (or dead-lettered
        the ones it rejected as invalid). Waits while the buffer is full."""
        done = await self._queue_points(points)
        if done is not None:
            await asyncio.shield(done)

    async def add(self, points: Sequence[Point]) -> None:
        """Queue ``points`` to be written (waits while the buffer is full); :meth:`flush` waits
        for their acknowledgement."""
        await self._queue_points(points)

    async def _queue_points(self, points: Iterable[Point]) -> asyncio.Future[None] | None:
        if self._task is None:
            raise PmaintError("InfluxSink.write() before start()")
        lines: list[bytes] = []
        for point in points:
            try:
                lines.append(encode(point))
            except (ValueError, TypeError) as exc:
                self._dead_letter(f"not encodable: {exc}", [repr(point).encode()], None)
        if not lines:
            return None
        async with self._space:
            await self._space.wait_for(
                lambda: self.buffered == 0 or self.buffered + len(lines) <= self.max_buffer
            )
            self.buffered += len(lines)
        pending = _Pending(lines, asyncio.get_running_loop().create_future(), left=len(lines))
        self._queue.append(pending)
        self._unacked.add(pending.done)
        pending.done.add_done_callback(self._unacked.discard)
        self._wake.set()
        return pending.done

    # -- background ----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await linger(
                self._wake, self._unsent, self.batch_size, self.linger_s, lambda: self._flushing > 0
            )
            batch, owners = self._take()
            await self._deliver(batch)
            for pending, n in owners:
                pending.left -= n
                if pending.left == 0 and not pending.done.done():
                    pending.done.set_result(None)
            async with self._space:
                self.buffered -= len(batch)
                self._space.notify_all()

    def _unsent(self) -> int:
        return sum(len(p.lines) - p.taken for p in self._queue)

    def _take(self) -> tuple[list[bytes], list[tuple[_Pending, int]]]:
        batch: list[bytes] = []
        owners: list[tuple[_Pending, int]] = []
        while self._queue and len(batch) < self.batch_size:
            head = self._queue[0]
            n = min(self.batch_size - len(batch), len(head.lines) - head.taken)
            batch += head.lines[head.taken : head.taken + n]
            head.taken += n
            owners.append((head, n))
            if head.taken == len(head.lines):
                self._queue.popleft()
        return batch, owners

    async def _deliver(self, lines: list[bytes]) -> None:
        body = gzip.compress(b"\n".join(lines), self.gzip_level)
        backoff = Backoff(self.backoff_s, self.backoff_max_s)
        while True:
            status, reason, retry_after = await self._post(body)
            if status is not None and 200 <= status < 300:
                self.stats.written += len(lines)
                return
            if status is not None and status not in _RETRY and status < 500:
                if len(lines) > 1 and status in (400, 413):  # isolate the rejected lines
                    half = len(lines) // 2
                    await self._deliver(lines[:half])
                    await self._deliver(lines[half:])
                else:
                    self._dead_letter(reason, lines, status)
                return
            self.stats.retries += 1
            self.stats.last_error = reason
            delay = backoff.next(at_least=min(retry_after or 0.0, 300.0))
            log_at = logging.ERROR if status in (401, 403, 404) else logging.WARNING
            log.log(log_at, "InfluxDB write failed (%s), retry in %.1f s", reason, delay)
            await asyncio.sleep(delay)

    async def _post(self, body: bytes) -> tuple[int | None, str, float | None]:
        assert self._session is not None
        self.stats.requests += 1
        try:
            async with self._session.post(
                self.target.write_url, data=body, headers=_WRITE_HEADERS
            ) as r:
                text = (await r.text())[:2000] if r.status >= 300 else ""
                retry = r.headers.get("Retry-After", "")
                after = float(retry) if retry.replace(".", "", 1).isdigit() else None
                return r.status, f"HTTP {r.status}: {text.strip()}", after
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return None, f"{type(exc).__name__}: {redact_text(str(exc))}", None

    async def _create_database(self) -> None:
        """Best effort ``CREATE DATABASE`` on 1.x (idempotent; fine to be refused)."""
        assert self._session is not None
        db = self.target.query["db"].replace("\\", "\\\\").replace('"', '\\"')
        try:
            async with self._session.post(
                f"{self.target.url}/query", data={"q": f'CREATE DATABASE "{db}"'}
            ) as r:
                await r.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("InfluxDB: could not create database (%s)", redact_text(str(exc)))

    def _dead_letter(self, reason: str, lines: list[bytes], status: int | None) -> None:
        self.stats.dead_lettered += len(lines)
        log.error("InfluxDB rejected %d line(s), dead-lettered: %s", len(lines), reason)
        record = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "target": self.target.describe(),
            "status": status,
            "reason": reason,
            "lines": [line.decode(errors="replace") for line in lines],
        }
        self.dead_letter_path.parent.mkdir(parents=True, exist_ok=True)
        with self.dead_letter_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
