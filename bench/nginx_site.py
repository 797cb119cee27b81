"""The repo's nginx site (deploy/nginx), rendered into a private nginx prefix on 127.0.0.1.

Shared by the benchmark (bench/run.py) and the tests (tests/conftest.py): only ports and
paths are filled in, and the main nginx.conf around the site is this module's own, with
`sendfile` and `tcp_nopush` on as Debian's default nginx.conf has them.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "nginx"


def render(template: Path, values: dict[str, str]) -> str:
    """Fill a deploy template's ${NAME} placeholders, as envsubst would."""
    text = template.read_text()
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    if "${" in code:
        raise ValueError(f"unfilled placeholder in {template}")
    return text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_prefix(prefix: Path, app_urls: list[str], files: str, files_values: dict[str, str],
                 extra_http: str = "") -> int:
    """Write nginx.conf, the site and its files include (`files`, one of deploy/nginx's) into
    the folder `prefix`, proxying to `app_urls`; return the port the site listens on.

    `extra_http` is added to the http block (the benchmark's plain static server)."""
    port = free_port()
    files_conf = prefix / "files.conf"
    files_conf.write_text(render(DEPLOY / files, files_values))
    servers = " ".join(f"server {url.removeprefix('http://')};" for url in app_urls)
    (prefix / "site.conf").write_text(render(DEPLOY / "imglink.conf", {
        "LISTEN": f"127.0.0.1:{port}", "SERVER_NAME": "localhost",
        "APP_SERVERS": servers, "FILES_CONF": str(files_conf)}))
    temp_paths = "\n".join(f"  {kind}_temp_path {prefix / kind};"
                           for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (prefix / "nginx.conf").write_text(f"""
{"user root;" if os.geteuid() == 0 else ""}
daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
  sendfile on;
  tcp_nopush on;
  access_log {prefix / "access.log"};
{temp_paths}
  include {prefix / "site.conf"};
{extra_http}
}}
""")
    return port
