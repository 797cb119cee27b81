"""Fixtures and factories shared by the whole suite."""
from __future__ import annotations

import datetime as dt
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import NoReturn

import pytest
import requests
from flask.testing import FlaskClient
from PIL import Image

from imglink import create_app
from imglink.core import accounts
from imglink.core import clock as domain_clock
from imglink.core.db import database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from nginx_site import free_port, write_prefix  # noqa: E402  (shared with the benchmark)

BIN = Path(sys.executable).parent


def run_as_postgres(args: list[str], **kwargs) -> subprocess.Popen:
    """Start a PostgreSQL program; as root, as the `postgres` user (it refuses root)."""
    if os.geteuid() == 0:
        args = [require("runuser", "util-linux"), "-u", "postgres", "--", *args]
    return subprocess.Popen(args, **kwargs)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A real PostgreSQL on a free loopback port, for the session; yields its base URL."""
    initdb = shutil.which("initdb") or "/usr/lib/postgresql/15/bin/initdb"
    if not os.path.exists(initdb):
        require("initdb", "postgresql")
    postgres = str(Path(initdb).with_name("postgres"))
    folder = Path(tempfile.mkdtemp(prefix="imglink-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    init = run_as_postgres([initdb, "-D", str(data), "-A", "trust", "-U", "postgres",
                            "--no-sync"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = init.communicate(timeout=120)
    assert init.returncode == 0, err
    port = free_port()
    server = run_as_postgres(
        [postgres, "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(folder),
         "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
         "-c", "max_connections=200"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"postgresql://postgres@127.0.0.1:{port}"
    import psycopg2
    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg2.connect(url + "/postgres").close()
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise
            time.sleep(0.1)
    yield url
    stop(server)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty PostgreSQL database for one test; yields its URL."""
    import psycopg2
    name = "t_" + uuid.uuid4().hex[:12]
    admin = psycopg2.connect(postgres_server + "/postgres")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    yield f"{postgres_server}/{name}"
    admin.cursor().execute(f"DROP DATABASE {name} WITH (FORCE)")
    admin.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's standalone S3 server on a free loopback port; yields its endpoint URL."""
    binary = BIN / "moto_server"
    if not binary.exists():
        require("moto_server", "moto[server] from PyPI")
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    process = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT)
    log.close()
    url = f"http://127.0.0.1:{port}"
    wait_for(url, process=process)
    yield url
    stop(process)


S3_CREDENTIALS = {"S3_ACCESS_KEY": "testing", "S3_SECRET_KEY": "testing",
                  "S3_REGION": "us-east-1"}


@pytest.fixture
def s3_bucket(s3_server):
    """A new bucket on the S3 server; yields its name."""
    import boto3
    name = "imglink-" + uuid.uuid4().hex[:12]
    client = boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    client.create_bucket(Bucket=name)
    yield name


def base_config(tmp_path) -> dict:
    return {
        "TESTING": True,
        "DATA_DIR": str(tmp_path / "data"),
        "SECRET_KEY": "test-secret",
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_STORAGE_URI": "memory://",
    }


@pytest.fixture(params=["embedded", "scaled"])
def backend(request, tmp_path):
    """Settings for the two deployments every app test runs on: SQLite and local disk, or
    PostgreSQL and S3 (each a real server on 127.0.0.1)."""
    if request.param == "embedded":
        return {}
    database_url = request.getfixturevalue("postgres_url")
    bucket = request.getfixturevalue("s3_bucket")
    from imglink.core.db import create_tables, open_database
    open_database(database_url)
    create_tables()  # as `imglink db upgrade` does before a PostgreSQL deployment starts
    return {"DATABASE_URL": database_url, "STORAGE_URL": f"s3://{bucket}/images",
            "S3_ENDPOINT_URL": request.getfixturevalue("s3_server"), **S3_CREDENTIALS}


@pytest.fixture
def app(tmp_path, backend):
    app = create_app({**base_config(tmp_path), **backend})
    yield app
    pool = getattr(database.obj, "close_all", None)
    if pool:
        pool()


class BufferedClient(FlaskClient):
    """A test client that reads and closes every response, so served files are closed."""

    def open(self, *args, buffered: bool = True, **kwargs):
        return super().open(*args, buffered=buffered, **kwargs)


@pytest.fixture
def client(app):
    app.test_client_class = BufferedClient
    return app.test_client()


class FakeClock:
    """The domain's clock, stopped at the time it was made, moved on by hand."""

    def __init__(self) -> None:
        self.time = dt.datetime.now(dt.timezone.utc)

    def now(self) -> dt.datetime:
        return self.time

    def advance(self, **delta: float) -> None:
        self.time += dt.timedelta(**delta)


@pytest.fixture
def clock():
    """Stop the domain's clock for one test; `clock.advance(minutes=5)` moves it."""
    fake = FakeClock()
    domain_clock.use(fake.now)
    yield fake
    domain_clock.use(None)


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_account(app):
    """Create an account on a plan; return (email, api_key)."""
    counter = iter(range(1_000_000))

    def make(plan: str = "free", email: str | None = None) -> tuple[str, str]:
        email = email or f"user{next(counter)}@example.com"
        with app.app_context(), database.connection_context():
            _account, key = accounts.create_account(email, plan, app.config["PLANS"])
        return email, key

    return make


@pytest.fixture
def api_key(make_account):
    return make_account("free")[1]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_image(fmt: str = "JPEG", size: tuple[int, int] = (64, 48), mode: str = "RGB",
               color=(200, 30, 30), **save_options) -> bytes:
    """Return the bytes of a small image made with Pillow."""
    image = Image.new(mode, size, color)
    out = io.BytesIO()
    image.save(out, fmt, **save_options)
    return out.getvalue()


def upload(client, data: bytes, filename: str = "image.jpg", headers=None, **fields):
    """POST one file to /api/v1/upload through the Flask test client."""
    form = {"file": (io.BytesIO(data), filename), **fields}
    return client.post("/api/v1/upload", data=form, headers=headers or {},
                       content_type="multipart/form-data")


def encode(im: Image.Image, fmt: str, **options) -> bytes:
    """Return `im` saved in `fmt`."""
    out = io.BytesIO()
    im.save(out, fmt, **options)
    return out.getvalue()


def expire_now(app, image_id: str) -> None:
    """Move the image's expiry into the past, as if its hour had run out."""
    from imglink.core.clock import utcnow
    from imglink.core.models import Image as ImageRecord
    past = utcnow() - dt.timedelta(minutes=1)
    with app.app_context(), database.connection_context():
        updated = ImageRecord.update(expires_at=past).where(ImageRecord.id == image_id).execute()
    assert updated == 1


def uploaded(client, data: bytes | None = None, filename: str = "photo.jpg", **fields) -> dict:
    """Upload `data` (a small JPEG by default), assert it was stored; return the image object."""
    r = upload(client, data if data is not None else make_image(), filename, **fields)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.json["data"]


def deleted_and_expired(app, client) -> tuple[str, str]:
    """Upload two images, delete one with its token and expire the other; return their ids."""
    deleted = uploaded(client)
    assert client.delete(f"/api/v1/image/{deleted['id']}",
                         headers={"X-Delete-Token": deleted["delete_token"]}).status_code == 200
    expired = uploaded(client, expiry="1")
    expire_now(app, expired["id"])
    return deleted["id"], expired["id"]


def path_of(url: str) -> str:
    """Return the path (and query) of an absolute link, to fetch it with the test client."""
    return re.sub(r"^https?://[^/]+", "", url)


def require(program: str, package: str | None = None) -> str:
    """Return the path of `program`; skip the test without it, but fail in CI, which installs it."""
    path = shutil.which(program)
    if path is None:
        unavailable(f"{program} is not installed (apt-get install {package or program})")
    return path


def unavailable(reason: str) -> NoReturn:
    """Skip a test that needs something this machine lacks; fail in CI, which must have it."""
    if os.environ.get("CI"):
        pytest.fail(reason + "; CI must provide it (.ci/run, setup.cfg's test extras)")
    pytest.skip(reason)


def raw_request(base_url: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `data` as it is to the server at `base_url`; return the status, the headers (names
    in lower case) and the body of its answer, read until it closes the connection."""
    host, port = base_url.split("://")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def wait_for(url: str, timeout: float = 30, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was ready")
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


class LiveServer:
    """A running ImgLink server and the environment its admin CLI needs."""

    def __init__(self, url: str, env: dict[str, str], process: subprocess.Popen) -> None:
        self.url = url
        self.env = env
        self.process = process

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """Run the `imglink` admin command against this server's data."""
        return subprocess.run([str(BIN / "imglink"), *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    def create_key(self, plan: str = "free", email: str = "owner@example.com") -> str:
        result = self.cli("account", "create", email, "--plan", plan)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def start_server(tmp_path):
    """Start ImgLink as `make run` does (gunicorn with gunicorn.conf.py) on a free port.

    Keyword arguments become environment variables (IMGLINK_*, GUNICORN_WORKERS...).
    """
    processes = []

    def start(**env_overrides: str) -> LiveServer:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMGLINK_")}
        env["IMGLINK_DATA_DIR"] = str(tmp_path / "live-data")
        env.update(env_overrides)
        log = open(tmp_path / f"gunicorn-{port}.log", "wb")
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py",
             "--bind", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        processes.append(process)
        server = LiveServer(f"http://127.0.0.1:{port}", env, process)
        wait_for(server.url + "/api/v1/health", process=process)
        return server

    yield start
    for process in processes:
        stop(process)


@pytest.fixture
def live_server(start_server):
    return start_server()


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server on a free loopback port; yields its URL and a stop/start handle."""
    binary = require("redis-server")

    class Redis:
        port = free_port()
        url = f"redis://127.0.0.1:{port}/0"
        process: subprocess.Popen | None = None

        def start(self) -> None:
            self.process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(tmp_path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                    return
                except OSError:
                    time.sleep(0.05)
            raise RuntimeError("redis-server did not start")

        def stop(self) -> None:
            if self.process is not None:
                stop(self.process)
                self.process = None

    redis = Redis()
    redis.start()
    yield redis
    redis.stop()


DEPLOY = ROOT / "deploy"


@pytest.fixture
def start_nginx(tmp_path):
    """Start nginx with the repo's site config (deploy/nginx) on a free port, as
    bench/nginx_site.py writes it: only ports and paths are filled in."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        require("nginx")
    processes = []

    def start(app_urls: list[str], files: str, **values: str) -> str:
        folder = Path(tempfile.mkdtemp(prefix="nginx-", dir=tmp_path))
        port = write_prefix(folder, app_urls, files, values)
        process = subprocess.Popen([binary, "-p", str(folder), "-c", str(folder / "nginx.conf")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_for(url + "/api/v1/health", process=process)
        return url

    yield start
    for process in processes:
        stop(process)
