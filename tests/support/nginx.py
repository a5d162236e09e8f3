"""nginx for tests: the shipped site (deploy/nginx.conf) in front of test daphne processes.

The site is the shipped file itself, with only what must differ on a test machine
replaced: the upstream servers (the test's daphne ports), the listen addresses (free
loopback ports, no IPv6), the certificate (a self-signed one made here), the static
root (the test's collectstatic output) and the media root (the daphne processes'
MEDIA_ROOT). Each replacement must find what it replaces, so a
change to the shipped file that the test would no longer exercise fails here loudly.
"""

import datetime
import ipaddress
import os
import pwd
import re
import shutil
import ssl
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.servers import ROOT, end_process, free_port, wait_for_port
from tests.support.services import service_missing

SITE = ROOT / "deploy" / "nginx.conf"
NGINX = "/usr/sbin/nginx"
#: A header the test adds to WebSocket handshakes: which daphne process took the socket.
UPSTREAM_HEADER = "X-Test-Upstream"

_UPSTREAM_SERVER = re.compile(r"^ *server 127\.0\.0\.1:\d+ (?P<options>[^;]*);\n", re.M)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for ``localhost`` and 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _replace(text: str, old: str, new: str) -> str:
    if old not in text:
        raise AssertionError(
            f"deploy/nginx.conf no longer has {old!r}; update tests/support/nginx.py"
        )
    return text.replace(old, new)


def site_config(
    *,
    upstream_ports: list[int],
    http_port: int,
    https_port: int,
    certificate: tuple[Path, Path],
    static_root: Path,
    media_root: Path,
) -> str:
    """deploy/nginx.conf with the test machine's ports, certificate, static and media roots."""
    text = SITE.read_text()
    servers = list(_UPSTREAM_SERVER.finditer(text))
    if not servers:
        raise AssertionError("deploy/nginx.conf has no `server 127.0.0.1:…` upstream lines")
    options = servers[0]["options"]
    ours = "".join(f"    server 127.0.0.1:{port} {options};\n" for port in upstream_ports)
    text = text[: servers[0].start()] + ours + _UPSTREAM_SERVER.sub("", text[servers[0].start() :])
    text = _replace(text, "    listen [::]:80;\n", "")
    text = _replace(text, "    listen [::]:443 ssl http2;\n", "")
    text = _replace(text, "listen 80;", f"listen 127.0.0.1:{http_port};")
    text = _replace(text, "listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
    text = _replace(text, "/etc/ssl/chatsite/fullchain.pem", str(certificate[0]))
    text = _replace(text, "/etc/ssl/chatsite/privkey.pem", str(certificate[1]))
    text = _replace(text, "alias /srv/chatsite/staticfiles/;", f"alias {static_root}/;")
    text = _replace(text, "alias /srv/chatsite/media/;", f"alias {media_root}/;")
    # The one addition: which process took each socket, so a test can tell "the other one".
    return _replace(
        text,
        "    location /ws/ {\n",
        f"    location /ws/ {{\n        add_header {UPSTREAM_HEADER} $upstream_addr always;\n",
    )


def main_config(directory: Path, site: Path) -> str:
    """A whole nginx.conf that keeps everything under ``directory`` and includes ``site``."""
    # Workers read the static files: as root they would drop to `nobody`, who cannot.
    user = pwd.getpwuid(os.geteuid()).pw_name
    temp = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
daemon off;
master_process on;
worker_processes 2;
{"user " + user + ";" if os.geteuid() == 0 else ""}
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {directory / "access.log"};
{temp}
    include {site};
}}
"""


class NginxServer:
    """nginx in the foreground with the shipped site, on free loopback ports."""

    def __init__(
        self,
        directory: Path,
        upstream_ports: list[int],
        *,
        certificate: tuple[Path, Path],
        static_root: Path,
        media_root: Path | None = None,
    ) -> None:
        if shutil.which(NGINX) is None:
            service_missing("nginx", f"{NGINX} is not installed")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        #: The MEDIA_ROOT nginx sends attached files from (the daphne processes' too).
        self.media_root = media_root or directory / "media"
        self.http_port, self.https_port = free_port(), free_port()
        site = directory / "chatsite.conf"
        site.write_text(
            site_config(
                upstream_ports=upstream_ports,
                http_port=self.http_port,
                https_port=self.https_port,
                certificate=certificate,
                static_root=static_root,
                media_root=self.media_root,
            )
        )
        self.config = directory / "nginx.conf"
        self.config.write_text(main_config(directory, site))
        #: The site as a browser sees it: https on localhost, the certificate trusted.
        self.url = f"https://localhost:{self.https_port}"
        self.ws_url = f"wss://localhost:{self.https_port}"
        self.ssl_context: ssl.SSLContext | None = ssl.create_default_context(
            cafile=str(certificate[0])
        )
        self._log = open(directory / "stderr.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [NGINX, "-p", str(directory), "-c", str(self.config), "-e", "stderr"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(self.https_port, self.process)
            wait_for_port(self.http_port, self.process)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"nginx did not start:\n{self.log()}") from None

    def log(self) -> str:
        """nginx's own messages (errors, warnings) so far."""
        return "".join(
            path.read_text(errors="replace")
            for path in (self.directory / "stderr.log", self.directory / "error.log")
            if path.exists()
        )

    def stop(self) -> None:
        """Stop nginx (SIGQUIT would wait for open sockets; SIGTERM closes them at once)."""
        end_process(self.process)
        self._log.close()


def check_config(directory: Path, config: Path) -> str:
    """``nginx -t`` on ``config``: its output; fails the test when nginx refuses it."""
    result = subprocess.run(
        [NGINX, "-t", "-p", str(directory), "-c", str(config), "-e", "stderr"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr
