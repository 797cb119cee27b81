"""docs/deploy.md's commands, run for real with their paths moved into a temp folder."""
from __future__ import annotations

import io
import re
import subprocess

import pytest
from PIL import Image

from conftest import DEPLOY, ROOT, require

DOC = ROOT / "docs" / "deploy.md"


def doc_blocks() -> dict[str, str]:
    """Return the first sh block after each `<!-- tested: NAME -->` marker, by NAME."""
    text = DOC.read_text()
    return {name: block for name, block in re.findall(
        r"<!-- tested: ([\w-]+) -->.*?```sh\n(.*?)```", text, flags=re.S)}


@pytest.fixture
def sandbox(tmp_path):
    """Paths of a server, moved into tmp_path; returns a function running a doc block."""
    paths = {"/opt/imglink": str(ROOT), "/etc/imglink": str(tmp_path / "etc-imglink"),
             "/var/lib/imglink": str(tmp_path / "var-lib-imglink"),
             "/etc/nginx": str(tmp_path / "etc-nginx")}
    nginx_dir = tmp_path / "etc-nginx"
    for sub in ("sites-available", "sites-enabled"):
        (nginx_dir / sub).mkdir(parents=True)
    (nginx_dir / "nginx.conf").write_text(f"""
pid {tmp_path / "nginx.pid"};
error_log {tmp_path / "nginx-error.log"};
events {{}}
http {{
  client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy;
  fastcgi_temp_path {tmp_path}/fcgi; uwsgi_temp_path {tmp_path}/uwsgi; scgi_temp_path {tmp_path}/scgi;
  include {nginx_dir}/sites-enabled/*;
}}
""")

    def run(block: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        for old, new in {**paths, **(extra or {})}.items():
            block = block.replace(old, new)
        block = block.replace("nginx -t", f"{require('nginx')} -t -c {nginx_dir / 'nginx.conf'}")
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{block}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        return result

    return run


def test_every_tested_section_is_present():
    assert set(doc_blocks()) == {"settings", "admin", "nginx", "nginx-s3", "check"}


def test_settings_admin_and_nginx_sections_work(sandbox, tmp_path):
    blocks = doc_blocks()
    require("envsubst", "gettext-base")
    sandbox(blocks["settings"])
    env_file = tmp_path / "etc-imglink" / "imglink.env"
    settings = env_file.read_text()
    assert "IMGLINK_TRUSTED_PROXIES=1" in settings
    # "Edit to taste": here, the data folder moves into the sandbox too.
    env_file.write_text(settings.replace("/var/lib/imglink", str(tmp_path / "var-lib-imglink")))

    admin = sandbox(blocks["admin"])
    key = admin.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"ilk_[A-Za-z0-9]{30}", key)
    assert (tmp_path / "var-lib-imglink" / "imglink.db").exists()

    nginx = sandbox(blocks["nginx"])
    assert "test is successful" in nginx.stderr
    site = (tmp_path / "etc-nginx" / "sites-available" / "imglink").read_text()
    code = "\n".join(line for line in site.splitlines() if not line.lstrip().startswith("#"))
    assert "server_name img.example.com;" in code and "${" not in code
    files = (tmp_path / "etc-nginx" / "imglink-files.conf").read_text()
    assert f"root {tmp_path / 'var-lib-imglink' / 'files'};" in files

    sandbox("cd /opt/imglink/deploy/nginx\n" + blocks["nginx-s3"] + "nginx -t\n")
    files = (tmp_path / "etc-nginx" / "imglink-files.conf").read_text()
    assert "proxy_pass https://s3.eu-west-1.amazonaws.com/my-bucket/images/$kind/" in files


def test_check_section_against_a_live_server(sandbox, live_server, tmp_path):
    require("curl")
    out = io.BytesIO()
    Image.new("RGB", (120, 80), "teal").save(out, "JPEG")
    (tmp_path / "photo.jpg").write_bytes(out.getvalue())
    result = sandbox(doc_blocks()["check"], {"https://img.example.com": live_server.url})
    assert '"success":true' in result.stdout.replace(" ", "")
    assert '"format":"JPEG"' in result.stdout.replace(" ", "")


def test_systemd_units_verify(tmp_path):
    analyze = require("systemd-analyze", "systemd")
    units = []
    for unit in sorted((DEPLOY / "systemd").iterdir()):
        target = tmp_path / unit.name
        target.write_text(unit.read_text().replace("/opt/imglink", str(ROOT)))
        units.append(str(target))
    result = subprocess.run([analyze, "verify", *units], capture_output=True, text=True,
                            timeout=60)
    problems = [line for line in result.stderr.splitlines()
                if "imglink" in line and "Failed to" not in line and "user" not in line.lower()]
    assert result.returncode == 0 or not problems, result.stderr
    text = (DEPLOY / "systemd" / "imglink-purge.timer").read_text()
    assert "OnCalendar=minutely" in text
    service = (DEPLOY / "systemd" / "imglink.service").read_text()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in service
    assert "EnvironmentFile=/etc/imglink/imglink.env" in service
