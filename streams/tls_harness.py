"""A real TLS path to Kafka for the tests: Tansu behind Debian's ``stunnel4``.

Tansu listens on plaintext loopback and advertises the terminator's port, so every connection a
client makes (bootstrap and the brokers the metadata names) goes through TLS. Certificates come
from a throwaway CA made with the ``openssl`` CLI in the server's directory.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from streams.embedded import EmbeddedBroker, free_port, port_open
from streams.harness import Server, require, spawn, wait_until


@dataclass(frozen=True)
class Ca:
    """A CA's certificate and key (PEM files)."""

    cert: Path
    key: Path


def make_ca(workdir: Path, name: str) -> Ca:
    """A self-signed CA valid for two days."""
    cert, key = workdir / f"{name}.pem", workdir / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", cert, "-days", "2",
             "-subj", f"/CN={name}")  # fmt: skip
    return Ca(cert, key)


def issue_server_cert(workdir: Path, ca: Ca) -> tuple[Path, Path]:
    """A certificate for ``127.0.0.1`` / ``localhost`` signed by ``ca``: (cert, key)."""
    cert, key, csr = workdir / "server.pem", workdir / "server.key", workdir / "server.csr"
    ext = workdir / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", csr, "-subj", "/CN=localhost")  # fmt: skip
    _openssl("x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
             "-out", cert, "-days", "2", "-extfile", ext)  # fmt: skip
    return cert, key


def _openssl(*args: object) -> None:
    subprocess.run(
        [require("openssl"), *map(str, args)], check=True, capture_output=True, timeout=60
    )


@dataclass
class TlsBroker:
    """Tansu behind stunnel; ``bootstrap`` is the TLS port, ``ca`` the CA that signed it."""

    broker: EmbeddedBroker
    stunnel: Server
    ca: Ca

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.stunnel.port}"

    def stop(self) -> None:
        self.stunnel.stop()
        self.broker.stop()


def start_tls_tansu(workdir: Path, authentication: bool = False) -> TlsBroker:
    """Tansu reachable only over TLS (through ``stunnel4`` on a free port), with SASL
    logins required when ``authentication``."""
    binary = require("stunnel4")
    ca = make_ca(workdir, "pmaint-test-ca")
    cert, key = issue_server_cert(workdir, ca)
    tls_port = free_port()
    broker = EmbeddedBroker(
        workdir / "tansu.log", advertised_port=tls_port, authentication=authentication
    )
    conf = workdir / "stunnel.conf"
    conf.write_text(
        "foreground = yes\npid =\ndebug = warning\n[kafka]\n"
        f"accept = 127.0.0.1:{tls_port}\nconnect = 127.0.0.1:{broker.port}\n"
        f"cert = {cert}\nkey = {key}\n"
    )
    stunnel = Server(tls_port, spawn([binary, str(conf)], workdir), workdir)
    try:
        wait_until(lambda: port_open(tls_port), 20, "stunnel4")
    except RuntimeError:
        stunnel.stop()
        broker.stop()
        raise
    return TlsBroker(broker, stunnel, ca)
