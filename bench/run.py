"""Benchmark ImgLink as deployed (gunicorn + gunicorn.conf.py, behind the repo's nginx site)
against floors measured in the same run, and print one table with PASS/FAIL per target.

    .venv/bin/python bench/run.py [--quick] [--workers N] [--database postgresql]

Everything runs on 127.0.0.1 and stops by itself: every phase is bounded in count and time,
and every process started here is stopped on exit, Ctrl-C and errors alike. The results go
to bench/results/latest.json (and a copy named after the options and the time). What each
figure and floor means is in docs/performance.md.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import functools
import http.client
import io
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zlib
from dataclasses import dataclass
from pathlib import Path

import requests
from PIL import Image, ImageFilter

import floor_app  # bench/floor_app.py, beside this file
from imglink.core.models import storage_key  # where the plain static server finds a stored file
from nginx_site import free_port, write_prefix  # bench/nginx_site.py

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
BIN = Path(sys.executable).parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
MiB = 1024 * 1024
SEED = 20261128
INPUTS_VERSION = 1  # bump when the generators change, so cached inputs are remade

# Targets, as ratios of our figure to its floor.
UPLOAD_CPU_TARGET = 1.3  # CPU per 1 MP upload <= 1.3 x (transport + imaging + I/O at c=8)
LARGE_LATENCY_TARGET = 1.3  # 24 MP upload latency <= 1.3 x the same floors' latencies
SERVE_TARGET = 0.8  # /i/ and /t/ through nginx >= 0.8 x nginx serving the file as static
PNG_MEMORY_SLACK = 32 * MiB  # peak above baseline <= decoded size + this
BIG_MEMORY_LIMIT = 128 * MiB  # peak above baseline for the 1 GiB upload


@dataclass
class Settings:
    quick: bool
    workers: int
    database: str
    redis: bool
    uploads: int
    concurrency: int
    rounds: int
    large_repeats: int
    floor_repeats: int
    wrk_seconds: int
    big_body: int
    max_seconds: int
    keep: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Settings":
        quick = args.quick
        return cls(
            quick=quick, workers=args.workers, database=args.database,
            redis=args.redis if args.redis is not None else args.workers > 1,
            uploads=args.uploads or (40 if quick else 400), concurrency=8,
            rounds=args.rounds or (2 if quick else 4),
            large_repeats=2 if quick else 5, floor_repeats=10 if quick else 100,
            wrk_seconds=args.wrk_seconds or (3 if quick else 20),
            big_body=(128 if quick else 1024) * MiB, max_seconds=args.max_seconds,
            keep=args.keep)


# --- processes ------------------------------------------------------------------------------

class Processes:
    """Every server started by the run, stopped in reverse order whatever happens."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, subprocess.Popen, signal.Signals, Path | None]] = []
        self.folders: list[Path] = []  # removed once every process is stopped

    def start(self, name: str, args: list[str], log: Path, stop_signal=signal.SIGTERM,
              pid_file: Path | None = None, **kwargs) -> subprocess.Popen:
        with open(log, "wb") as out:
            # Its own session: a Ctrl-C reaches this script only, which then stops it in order.
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True,
                                       **kwargs)
        self.entries.append((name, process, stop_signal, pid_file))
        return process

    def stop_all(self, keep: bool = False) -> None:
        while self.entries:
            name, process, stop_signal, pid_file = self.entries.pop()
            _stop(process, stop_signal, pid_file)
        while self.folders:
            folder = self.folders.pop()
            if keep:
                print(f"kept {folder}", file=sys.stderr)
            else:
                shutil.rmtree(folder, ignore_errors=True)


def _stop(process: subprocess.Popen, stop_signal: signal.Signals, pid_file: Path | None) -> None:
    if process.poll() is not None:
        return
    target = process.pid
    if pid_file is not None:
        # runuser does not pass signals on: signal the server itself, named in its pid file.
        with contextlib.suppress(OSError, ValueError, IndexError):
            target = int(pid_file.read_text().split()[0])
    with contextlib.suppress(ProcessLookupError):
        os.kill(target, stop_signal)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        if target != process.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGKILL)
        process.wait(timeout=10)


def wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode} before it was ready; "
                               f"log {log}:\n{tail(log)}")
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s; log {log}:\n{tail(log)}")


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def proc_tree(root: int) -> list[int]:
    """Return `root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_cpu(root: int) -> float:
    """Return the CPU seconds (user + system, all threads) used so far by a process tree."""
    total = 0
    for pid in proc_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def status_kib(pid: int, name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# --- inputs ---------------------------------------------------------------------------------

@dataclass
class Input:
    name: str
    path: Path
    width: int
    height: int
    bands: int

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    @property
    def decoded(self) -> int:
        return self.width * self.height * self.bands

    def body(self, field_name: str = "file") -> tuple[bytes, str]:
        return multipart(self.path.read_bytes(), self.path.name, field_name)


BOUNDARY = "imglink-bench-boundary-7d1e4f"


def multipart_parts(filename: str, media_type: str,
                    field_name: str = "file") -> tuple[bytes, bytes, str]:
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field_name}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: {media_type}\r\n\r\n").encode()
    foot = f"\r\n--{BOUNDARY}--\r\n".encode()
    return head, foot, f"multipart/form-data; boundary={BOUNDARY}"


def multipart(data: bytes, filename: str, field_name: str = "file") -> tuple[bytes, str]:
    media = "image/png" if filename.endswith(".png") else "image/jpeg"
    head, foot, content_type = multipart_parts(filename, media, field_name)
    return head + data + foot, content_type


def photo_like(width: int, height: int, seed: int) -> Image.Image:
    """Return a smooth colour gradient with seeded, slightly blurred noise: JPEG compresses it
    about as well as a photo."""
    rng = random.Random(seed)
    size = (width, height)
    red = Image.linear_gradient("L").rotate(90).resize(size, Image.Resampling.BICUBIC)
    green = Image.radial_gradient("L").resize(size, Image.Resampling.BICUBIC)
    blue = Image.linear_gradient("L").resize(size, Image.Resampling.BICUBIC)
    base = Image.merge("RGB", (red, green, blue))
    noise = Image.frombytes("RGB", size, rng.randbytes(width * height * 3))
    noise = noise.filter(ImageFilter.GaussianBlur(0.7))
    return Image.blend(base, noise, 0.35)


def encode_near(image: Image.Image, target: int) -> bytes:
    """Return the JPEG encoding of `image` whose size is nearest `target`, by quality."""
    cache: dict[int, bytes] = {}

    def encode(quality: int) -> bytes:
        if quality not in cache:
            out = io.BytesIO()
            image.save(out, "JPEG", quality=quality)
            cache[quality] = out.getvalue()
        return cache[quality]

    low, high = 20, 95
    while high - low > 1:
        middle = (low + high) // 2
        if len(encode(middle)) < target:
            low = middle
        else:
            high = middle
    return min((encode(low), encode(high)), key=lambda data: abs(len(data) - target))


def make_inputs(folder: Path) -> dict[str, Input]:
    """Generate (or reuse, when made by the same generator and Pillow) the seeded inputs."""
    import PIL
    folder.mkdir(parents=True, exist_ok=True)
    tag = f"v{INPUTS_VERSION}-s{SEED}-pil{PIL.__version__}"
    specs = {
        "jpeg_1mp": ("photo-1mp.jpg", 1280, 800, 280_000),
        "jpeg_24mp": ("photo-24mp.jpg", 6000, 4000, 6_700_000),
    }
    inputs = {}
    for key, (name, width, height, target) in specs.items():
        path = folder / f"{tag}-{name}"
        if not path.exists():
            print(f"  making {name} ({width}x{height}, about {target / 1e3:,.0f} KB)", flush=True)
            data = encode_near(photo_like(width, height, SEED + width), target)
            path.with_suffix(".part").write_bytes(data)
            path.with_suffix(".part").rename(path)
        inputs[key] = Input(key, path, width, height, 3)
    # 60 MiB of seeded random RGB pixels, stored without compression: incompressible.
    width, height = 4096, 5120
    path = folder / f"{tag}-noise-60mib.png"
    if not path.exists():
        print("  making noise-60mib.png (4096x5120 RGB, compress_level=0)", flush=True)
        rng = random.Random(SEED + 60)
        image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
        image.save(path.with_suffix(".part"), "PNG", compress_level=0)
        path.with_suffix(".part").rename(path)
    inputs["png_60mib"] = Input("png_60mib", path, width, height, 3)
    return inputs


class BigPngBody:
    """A multipart body holding one PNG of exactly `size` bytes, made while it is sent.

    Its header declares BIG_SIDE x BIG_SIDE RGB pixels (far past MAX_PIXELS), its one IDAT
    chunk is seeded noise with a correct CRC. The app must either refuse it by its pixel
    limit or store it; either way without holding it in memory.
    """

    BIG_SIDE = 32768
    CHUNK = 1 * MiB

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.block = random.Random(seed).randbytes(8 * MiB)
        self.head, self.foot, self.content_type = multipart_parts("huge.png", "image/png")
        ihdr = struct.pack(">IIBBBBB", self.BIG_SIDE, self.BIG_SIDE, 8, 2, 0, 0, 0)
        self.png_head = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr))
        self.iend = _png_chunk(b"IEND", b"")
        self.idat_length = size - len(self.png_head) - 12 - len(self.iend)

    @property
    def decoded(self) -> int:
        return self.BIG_SIDE * self.BIG_SIDE * 3

    def __len__(self) -> int:
        return len(self.head) + self.size + len(self.foot)

    def __iter__(self):
        yield self.head + self.png_head + struct.pack(">I4s", self.idat_length, b"IDAT")
        crc = zlib.crc32(b"IDAT")
        left, offset = self.idat_length, 0
        while left:
            n = min(self.CHUNK, left, len(self.block) - offset)
            piece = self.block[offset:offset + n]
            crc = zlib.crc32(piece, crc)
            yield piece
            left -= n
            offset = (offset + n) % len(self.block)
        yield struct.pack(">I", crc) + self.iend + self.foot


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# --- the stack ------------------------------------------------------------------------------

@dataclass
class Stack:
    """The servers of one run and what the phases need to reach them."""
    folder: Path
    app_url: str = ""
    app: subprocess.Popen | None = None
    floor_url: str = ""
    floor: subprocess.Popen | None = None
    floor_work_url: str = ""  # the same app doing the three floors' work (FLOOR_WORK=all)
    floor_work: subprocess.Popen | None = None
    nginx_url: str = ""
    static_url: str = ""
    postgres: subprocess.Popen | None = None
    api_key: str = ""
    files_root: Path | None = None


def run_as_postgres(args: list[str]) -> list[str]:
    """Prefix a PostgreSQL program's arguments so that root runs it as `postgres`."""
    if os.geteuid() == 0:
        return [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "postgres", "--", *args]
    return args


def start_postgres(procs: Processes, folder: Path) -> tuple[str, subprocess.Popen]:
    initdb = shutil.which("initdb") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
    if initdb is None:
        sys.exit("--database postgresql needs PostgreSQL's initdb (apt-get install postgresql)")
    postgres = str(Path(initdb).with_name("postgres"))
    # A folder of its own: the run's folder is private to root, and postgres must enter this.
    pg = Path(tempfile.mkdtemp(prefix="imglink-bench-pg-"))
    procs.folders.append(pg)
    if os.geteuid() == 0:
        shutil.chown(pg, "postgres", "postgres")
    data = pg / "data"
    init = subprocess.run(run_as_postgres([initdb, "-D", str(data), "-A", "trust",
                                           "-U", "postgres", "--no-sync"]),
                          capture_output=True, text=True, timeout=120)
    if init.returncode:
        raise RuntimeError(f"initdb failed:\n{init.stdout}{init.stderr}")
    port = free_port()
    # fsync stays on: the benchmark measures a durable deployment.
    process = procs.start("postgres", run_as_postgres(
        [postgres, "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(pg),
         "-c", "max_connections=100"]), folder / "postgres.log",
        stop_signal=signal.SIGINT, pid_file=data / "postmaster.pid")
    import psycopg2
    url = f"postgresql://postgres@127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            admin = psycopg2.connect(url + "/postgres")
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("PostgreSQL did not start:\n" + tail(folder / "postgres.log"))
            time.sleep(0.1)
    admin.autocommit = True
    admin.cursor().execute("CREATE DATABASE imglink")
    admin.close()
    return url + "/imglink", process


def start_redis(procs: Processes, folder: Path) -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("several workers share quota counters in Redis (apt-get install redis-server),"
                 " or pass --no-redis")
    port = free_port()
    process = procs.start("redis", [binary, "--port", str(port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", "--dir", str(folder)],
                          folder / "redis.log")
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return f"redis://127.0.0.1:{port}/0"
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)


def gunicorn(procs: Processes, name: str, app: str, env: dict[str, str], log: Path,
             health: str) -> tuple[str, subprocess.Popen]:
    port = free_port()
    process = procs.start(name, [str(BIN / "gunicorn"), "--config", str(ROOT / "gunicorn.conf.py"),
                                 "--bind", f"127.0.0.1:{port}", app],
                          log, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_for(url + health, process, log)
    return url, process


def start_nginx(procs: Processes, folder: Path, app_url: str,
                files_root: Path) -> tuple[str, str]:
    """Start nginx with the repo's site (and files-local.conf) plus a plain static server over
    the same files folder, the serving floor; return both URLs."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        sys.exit("the benchmark needs nginx (apt-get install nginx)")
    prefix = folder / "nginx"
    prefix.mkdir()
    static_port = free_port()
    # The serving floor: the same files, as plain static files, from the same nginx.
    port = write_prefix(prefix, [app_url], "files-local.conf", {"FILES_ROOT": str(files_root)},
                        extra_http=f"""  server {{
    listen 127.0.0.1:{static_port};
    root {files_root};
    types {{ image/jpeg jpg; image/png png; }}
  }}""")
    log = folder / "nginx.log"
    process = procs.start("nginx", [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                          log)
    url = f"http://127.0.0.1:{port}"
    wait_for(url + "/api/v1/health", process, log)
    return url, f"http://127.0.0.1:{static_port}"


def start_stack(procs: Processes, settings: Settings, folder: Path) -> Stack:
    stack = Stack(folder)
    data = folder / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGLINK_")}
    env.update({"IMGLINK_DATA_DIR": str(data), "IMGLINK_TRUSTED_PROXIES": "1",
                "GUNICORN_WORKERS": str(settings.workers)})
    if settings.redis:
        env["IMGLINK_RATELIMIT_STORAGE_URI"] = start_redis(procs, folder)
    if settings.database == "postgresql":
        env["IMGLINK_DATABASE_URL"], stack.postgres = start_postgres(procs, folder)
        cli(env, "db", "upgrade")
    stack.app_url, stack.app = gunicorn(procs, "imglink", "wsgi:app", env,
                                        folder / "gunicorn-app.log", "/api/v1/health")
    stack.api_key = cli(env, "account", "create", "bench@example.com",
                        "--plan", "enterprise").strip().splitlines()[-1]
    floor_tmp = folder / "floor-tmp"
    floor_tmp.mkdir()
    floor_env = {k: v for k, v in env.items() if not k.startswith("IMGLINK_")}
    floor_env["FLOOR_TMP_DIR"] = str(floor_tmp)
    stack.floor_url, stack.floor = gunicorn(procs, "floor", "bench.floor_app:app", floor_env,
                                            folder / "gunicorn-floor.log", "/")
    stack.floor_work_url, stack.floor_work = gunicorn(
        procs, "floor-work", "bench.floor_app:app", {**floor_env, "FLOOR_WORK": "all"},
        folder / "gunicorn-floor-work.log", "/")
    stack.files_root = data / "files"
    stack.nginx_url, stack.static_url = start_nginx(
        procs, folder, stack.app_url, stack.files_root)
    return stack


def cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([str(BIN / "imglink"), *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    if result.returncode:
        raise RuntimeError(f"imglink {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


# --- phases ---------------------------------------------------------------------------------

def percentile(values: list[float], p: float) -> float:
    """Return the p-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def load_test(url: str, body: bytes, content_type: str, headers: dict[str, str], count: int,
              concurrency: int, cpu_root: int, extra_roots: tuple[int, ...] = (),
              deadline_s: float = 180) -> dict:
    """POST `body` `count` times at `concurrency`, one keep-alive connection per thread;
    return throughput, latency percentiles, errors and the server tree's CPU per request."""
    return summarize([load_round(url, body, content_type, headers, count, concurrency,
                                 cpu_root, extra_roots, deadline_s)])


def load_round(url: str, body: bytes, content_type: str, headers: dict[str, str], count: int,
               concurrency: int, cpu_root: int, extra_roots: tuple[int, ...] = (),
               deadline_s: float = 180) -> dict:
    """Do load_test's work; return the raw counts, latencies and CPU times for summarize().

    The client is http.client rather than requests: it shares the cores with the servers
    it measures, and costs a third as much CPU per upload (0.55 against 1.6 ms)."""
    local = threading.local()
    deadline = time.monotonic() + deadline_s
    parts = urllib.parse.urlsplit(url)
    headers = {**headers, "Content-Type": content_type, "Content-Length": str(len(body))}
    errors: list[str] = []
    first_ok: list[dict] = []

    def post() -> tuple[int, bytes]:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection(
                parts.hostname, parts.port, timeout=60)
        try:
            connection.request("POST", parts.path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            local.connection = None  # a new connection for this thread's next upload
            connection.close()
            raise

    def one(_: int) -> float | None:
        if time.monotonic() > deadline:  # read at call time: 0 once interrupted
            return None
        started = time.perf_counter()
        try:
            status, text = post()
            elapsed = time.perf_counter() - started
            document = json.loads(text)
            if status != 200 or not document.get("success"):
                errors.append(f"{status} {text[:200]!r}")
                return None
            if not first_ok:
                first_ok.append(document)
            return elapsed
        except (OSError, http.client.HTTPException, ValueError) as e:
            errors.append(repr(e)[:200])
            return None

    cpu_before = tree_cpu(cpu_root)
    extra_before = [tree_cpu(root) for root in extra_roots]
    client_before = time.process_time()
    started = time.perf_counter()
    pool = concurrent.futures.ThreadPoolExecutor(concurrency)
    try:
        results = list(pool.map(one, range(count)))
    except BaseException:
        deadline = 0.0  # on Ctrl-C, queued requests return at once instead of being sent
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return {
        "requests": count, "latencies_s": [r for r in results if r is not None],
        "error_list": errors, "wall_s": time.perf_counter() - started,
        "server_cpu_s": tree_cpu(cpu_root) - cpu_before,
        "other_cpu_s": [tree_cpu(root) - before for root, before in zip(extra_roots, extra_before)],
        "client_cpu_s": time.process_time() - client_before,
        "first_response": first_ok[0] if first_ok else None,
    }


def summarize(runs: list[dict]) -> dict:
    """Return the figures of one or more load_round results taken together."""
    latencies = [x for run in runs for x in run["latencies_s"]]
    errors = [x for run in runs for x in run["error_list"]]
    requests_ = sum(run["requests"] for run in runs)
    done = len(latencies) + len(errors)
    wall = sum(run["wall_s"] for run in runs)
    cpu = sum(run["server_cpu_s"] for run in runs)
    other = [sum(cpus) for cpus in zip(*(run["other_cpu_s"] for run in runs))]
    return {
        "requests": requests_, "completed": len(latencies), "errors": len(errors),
        "skipped_by_deadline": requests_ - done, "error_samples": errors[:3],
        "rounds": len(runs), "wall_s": wall, "per_s": len(latencies) / wall if wall else 0.0,
        "p50_ms": percentile(latencies, 50) * 1e3, "p95_ms": percentile(latencies, 95) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "server_cpu_s": cpu, "cpu_per_request_ms": cpu / max(done, 1) * 1e3,
        "round_cpu_per_request_ms": [
            run["server_cpu_s"] / max(len(run["latencies_s"]) + len(run["error_list"]), 1) * 1e3
            for run in runs],
        "other_cpu_per_request_ms": [c / max(done, 1) * 1e3 for c in other],
        # This script's own CPU: it shares the machine's cores with the servers.
        "client_cpu_per_request_ms": sum(run["client_cpu_s"] for run in runs) / max(done, 1) * 1e3,
        "first_response": next((run["first_response"] for run in runs if run["first_response"]),
                               None),
    }


def sequential_latency(url: str, body: bytes, content_type: str, headers: dict[str, str],
                       repeats: int, deadline_s: float = 120) -> dict:
    """POST `body` `repeats` times one after the other; return the median latency."""
    latencies, errors = [], []
    deadline = time.monotonic() + deadline_s
    with requests.Session() as session:
        for _ in range(repeats):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            try:
                response = session.post(url, data=body, timeout=120,
                                        headers={**headers, "Content-Type": content_type})
                elapsed = time.perf_counter() - started
                if response.status_code == 200 and response.json().get("success"):
                    latencies.append(elapsed)
                else:
                    errors.append(f"{response.status_code} {response.text[:200]}")
            except (requests.RequestException, ValueError) as e:
                errors.append(repr(e)[:200])
    return {"repeats": repeats, "errors": len(errors), "error_samples": errors[:3],
            "median_ms": statistics.median(latencies) * 1e3 if latencies else float("nan"),
            "all_ms": [x * 1e3 for x in latencies]}


def upload_rounds(settings: Settings, servers: dict[str, tuple], body: bytes,
                  content_type: str, jpeg: bytes, folder: Path) -> dict[str, dict]:
    """Send the 1 MP uploads to each server, and time the imaging and I/O floors, in
    alternating rounds: a slow spell of a shared machine then weighs on ImgLink and on its
    floors alike, instead of on whichever phase it fell in."""
    rounds: dict[str, list[dict]] = {name: [] for name in (*servers, "imaging_1mp", "io_1mp")}
    per_round = max(settings.uploads // settings.rounds, 1)
    floor_repeats = max(settings.floor_repeats // settings.rounds, 1)
    imaging_floor(jpeg, 320, 85, 2)  # warm: the first decode also sets up Pillow's codecs
    for number in range(settings.rounds):
        names = list(servers)[number % len(servers):] + list(servers)[:number % len(servers)]
        for name in names:
            url, headers, pid, extra_roots = servers[name]
            rounds[name].append(load_round(url + "/api/v1/upload", body, content_type, headers,
                                           per_round, settings.concurrency, pid, extra_roots))
        rounds["imaging_1mp"].append(imaging_floor(jpeg, 320, 85, floor_repeats))
        rounds["io_1mp"].append(io_floor(jpeg, folder, floor_repeats))
    return {name: summarize(runs) if name in servers else merge_timed(runs)
            for name, runs in rounds.items()}


def imaging_floor(data: bytes, size: int, quality: int, repeats: int) -> dict:
    """Decode a JPEG at reduced scale (draft) and thumbnail it as the app does, outside it."""
    return _timed(functools.partial(floor_app.imaging_work, data, size, quality), repeats)


def io_floor(data: bytes, folder: Path, repeats: int) -> dict:
    """Hash the bytes with sha256 and write one durable copy to a new file (write + fsync),
    kept until all are timed, as a store keeps its files."""
    files = Path(tempfile.mkdtemp(prefix="io-floor-", dir=folder))
    numbers = iter(range(repeats))
    try:
        return _timed(lambda: floor_app.io_work(data, str(files / str(next(numbers)))), repeats)
    finally:
        shutil.rmtree(files)


def _timed(work, repeats: int) -> dict:
    """Run `work` `repeats` times; return its mean thread CPU time and median wall time."""
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.thread_time(), time.perf_counter()
        work()
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    return merge_timed([{"cpu_s": cpu, "wall_s": wall}])


def merge_timed(runs: list[dict]) -> dict:
    """Return the figures of one or more _timed results taken together."""
    cpu = [x for run in runs for x in run["cpu_s"]]
    wall = [x for run in runs for x in run["wall_s"]]
    return {"repeats": len(cpu), "cpu_ms": statistics.fmean(cpu) * 1e3,
            "median_ms": statistics.median(wall) * 1e3,
            "round_cpu_ms": [statistics.fmean(run["cpu_s"]) * 1e3 for run in runs],
            "cpu_s": cpu, "wall_s": wall}


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def wrk(url: str, seconds: int) -> dict:
    """Run wrk -c 32 -t 2 --latency for `seconds` and parse its report."""
    binary = shutil.which("wrk")
    if binary is None:
        return {"skipped": "wrk is not installed (apt-get install wrk)"}
    result = subprocess.run([binary, "-c", "32", "-t", "2", "-d", f"{seconds}s", "--latency",
                             "--timeout", "10s", url],
                            capture_output=True, text=True, timeout=seconds + 60)
    text = result.stdout

    def duration(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
        return float(match[1]) * UNITS[match[2]] if match else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = (sum(map(int, socket_errors.groups())) if socket_errors else 0) + (
        int(non_2xx[1]) if non_2xx else 0)
    if result.returncode or rps is None:
        errors += 1
    return {"url": url, "seconds": seconds, "requests": int(total[1]) if total else 0,
            "per_s": float(rps[1]) if rps else float("nan"),
            "p50_ms": duration("50%"), "p99_ms": duration("99%"), "errors": errors,
            "raw": text[-2000:]}


def peak_memory(root: int, send) -> dict:
    """Run `send()` while sampling the tree's summed VmRSS every 20 ms; return the peak above
    the idle baseline, also checked against each worker's VmHWM (reset via clear_refs)."""
    pids = proc_tree(root)
    time.sleep(0.3)  # let the previous phase's buffers settle
    baseline = {pid: status_kib(pid, "VmRSS") for pid in pids}
    for pid in pids:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to VmRSS
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        current = pids
        n = 0
        while not stop.is_set():
            samples.append(sum(status_kib(pid, "VmRSS") for pid in current))
            n += 1
            if n % 50 == 0:
                current = proc_tree(root)
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        outcome = send()
    finally:
        stop.set()
        sampler.join(timeout=5)
    hwm = {pid: status_kib(pid, "VmHWM") for pid in pids}
    sampled = (max(samples) - sum(baseline.values())) * 1024 if samples else 0
    by_hwm = max(((hwm[pid] - baseline[pid]) * 1024 for pid in pids if hwm[pid]), default=0)
    return {"baseline_bytes": sum(baseline.values()) * 1024, "sampled_peak_above": sampled,
            "hwm_peak_above": by_hwm, "peak_above": max(sampled, by_hwm), "samples": len(samples),
            **outcome}


def send_once(url: str, body, content_type: str, headers: dict[str, str],
              accept: tuple[tuple[int, str | None], ...] = ((200, None),)) -> dict:
    """POST one body; a status in `accept` (with its error code, if named) is not an error."""
    started = time.perf_counter()
    try:
        response = requests.post(url, data=body, timeout=600,
                                 headers={**headers, "Content-Type": content_type})
    except requests.RequestException as e:
        return {"status": None, "errors": 1, "error_samples": [repr(e)[:200]],
                "latency_ms": (time.perf_counter() - started) * 1e3}
    elapsed = time.perf_counter() - started
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    code = (payload.get("error") or {}).get("code")
    ok = any(response.status_code == status and (want is None or code == want)
             for status, want in accept)
    return {"status": response.status_code, "code": code, "errors": 0 if ok else 1,
            "error_samples": [] if ok else [response.text[:200]],
            "latency_ms": elapsed * 1e3}


# --- the run --------------------------------------------------------------------------------

def run(settings: Settings, procs: Processes, folder: Path) -> dict:
    started = time.monotonic()
    load_before = os.getloadavg()
    print("inputs:", flush=True)
    inputs = make_inputs(RESULTS / "inputs")
    for item in inputs.values():
        print(f"  {item.path.name}: {item.width}x{item.height}, {item.size:,} bytes", flush=True)

    print("starting gunicorn (ImgLink and the transport floor), nginx"
          + (", PostgreSQL" if settings.database == "postgresql" else "")
          + (", Redis" if settings.redis else "") + " ...", flush=True)
    stack = start_stack(procs, settings, folder)
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    upload = "/api/v1/upload"
    db_roots = (stack.postgres.pid,) if stack.postgres else ()
    results: dict = {}

    jpeg_body, jpeg_type = inputs["jpeg_1mp"].body()
    # Warm both servers (imports, connections, first-request work) before measuring.
    load_test(stack.app_url + upload, jpeg_body, jpeg_type, auth, 16, 8, stack.app.pid)
    load_test(stack.floor_url + upload, jpeg_body, jpeg_type, {}, 16, 8, stack.floor.pid)
    load_test(stack.floor_work_url + upload, jpeg_body, jpeg_type, {}, 16, 8,
              stack.floor_work.pid)

    print(f"uploads: {settings.uploads} x 1 MP JPEG at concurrency {settings.concurrency}, "
          f"and the floors, in {settings.rounds} alternating rounds ...", flush=True)
    jpeg_1mp = inputs["jpeg_1mp"].path.read_bytes()
    results.update(upload_rounds(settings, {
        "upload_1mp": (stack.app_url, auth, stack.app.pid, db_roots),
        "transport_1mp": (stack.floor_url, {}, stack.floor.pid, ()),
        # The target's floors: the transport floor's bare endpoint doing the imaging and I/O
        # floors' work too, under the same load (both are also timed alone, below).
        "floors_in_server_1mp": (stack.floor_work_url, {}, stack.floor_work.pid, ()),
    }, jpeg_body, jpeg_type, jpeg_1mp, folder))
    first = results["upload_1mp"].pop("first_response") or {}
    results["transport_1mp"].pop("first_response")
    results["floors_in_server_1mp"].pop("first_response")
    jpeg_24mp = inputs["jpeg_24mp"].path.read_bytes()

    print(f"24 MP upload latency: median of {settings.large_repeats} ...", flush=True)
    big_body, big_type = inputs["jpeg_24mp"].body()
    results["upload_24mp"] = sequential_latency(stack.app_url + upload, big_body, big_type, auth,
                                                settings.large_repeats)
    results["transport_24mp"] = sequential_latency(stack.floor_url + upload, big_body, big_type,
                                                   {}, settings.large_repeats)
    results["imaging_24mp"] = imaging_floor(jpeg_24mp, 320, 85, settings.large_repeats)
    results["io_24mp"] = io_floor(jpeg_24mp, folder, settings.large_repeats)
    big_body = b""

    data = first.get("data") or {}
    image_id = data.get("id")
    serving = {}
    if image_id:
        ext = data["links"]["direct"].rpartition(".")[2]
        thumb_ext = data["links"]["thumbnail"].rpartition(".")[2]
        targets = {
            "i_nginx": f"{stack.nginx_url}/i/{image_id}.{ext}",
            "i_static": f"{stack.static_url}/{storage_key('i', image_id, ext)}",
            "i_gunicorn": f"{stack.app_url}/i/{image_id}.{ext}",
            "t_nginx": f"{stack.nginx_url}/t/{image_id}.{thumb_ext}",
            "t_static": f"{stack.static_url}/{storage_key('t', image_id, thumb_ext)}",
            "t_gunicorn": f"{stack.app_url}/t/{image_id}.{thumb_ext}",
        }
        for name, url in targets.items():
            check = requests.get(url, timeout=10)
            if check.status_code != 200:
                raise RuntimeError(f"GET {url} answered {check.status_code} before wrk")
            print(f"wrk -c 32 -t 2 -d {settings.wrk_seconds}s {name} ...", flush=True)
            serving[name] = wrk(url, settings.wrk_seconds)
    results["serving"] = serving

    png = inputs["png_60mib"]
    print("peak memory: one 60 MiB PNG upload ...", flush=True)
    png_body, png_type = png.body()
    results["memory_png"] = peak_memory(stack.app.pid, functools.partial(
        send_once, stack.app_url + upload, png_body, png_type, auth))
    results["memory_png"]["decoded_bytes"] = png.decoded
    png_body = b""  # 60 MiB this process no longer needs
    big = BigPngBody(settings.big_body, SEED + 1024)
    print(f"peak memory: one {settings.big_body // MiB} MiB upload ...", flush=True)
    # Refused by the pixel limit (400 INVALID_IMAGE) or stored (200): both are fine.
    results["memory_big"] = peak_memory(stack.app.pid, functools.partial(
        send_once, stack.app_url + upload, big, big.content_type, auth,
        accept=((200, None), (400, "INVALID_IMAGE"))))
    results["memory_big"].update(decoded_bytes=big.decoded, body_bytes=settings.big_body)

    return {
        "settings": settings.__dict__,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "pillow": Image.__version__,
                    "load_before": load_before, "load_after": os.getloadavg()},
        "inputs": {k: {"file": v.path.name, "bytes": v.size, "width": v.width,
                       "height": v.height, "decoded_bytes": v.decoded}
                   for k, v in inputs.items()},
        "results": results,
        "duration_s": time.monotonic() - started,
    }


# --- the table ------------------------------------------------------------------------------

def evaluate(report: dict) -> list[dict]:
    """Return the table's rows: our figure, its floor, the ratio, the target and PASS/FAIL."""
    r = report["results"]
    rows = []

    def row(figure, ours, floor, ratio=None, target=None, passed=None, errors=None, note=""):
        rows.append({"figure": figure, "ours": ours, "floor": floor,
                     "ratio": ratio, "target": target, "errors": errors, "note": note,
                     "result": None if passed is None else ("PASS" if passed else "FAIL")})

    up, tr, fw = r["upload_1mp"], r["transport_1mp"], r["floors_in_server_1mp"]
    im, io_ = r["imaging_1mp"], r["io_1mp"]
    # The target's floors, with both cores busy at concurrency 8: the bare endpoint doing the
    # imaging and I/O floors' work on every upload it receives, in the same gunicorn.
    ratio = up["cpu_per_request_ms"] / fw["cpu_per_request_ms"]
    per_round = [ours / floors for ours, floors in zip(
        up["round_cpu_per_request_ms"], fw["round_cpu_per_request_ms"])]
    row("1 MP upload: server CPU / upload", f"{up['cpu_per_request_ms']:.1f} ms",
        f"{fw['cpu_per_request_ms']:.1f} ms", ratio, f"<= {UPLOAD_CPU_TARGET:.1f}x",
        ratio <= UPLOAD_CPU_TARGET and up["errors"] + fw["errors"] == 0,
        up["errors"] + fw["errors"],
        note="floors at c=8: transport + imaging + I/O in one bare server; rounds: "
             + " ".join(f"{x:.2f}x" for x in per_round))
    alone = tr["cpu_per_request_ms"] + im["cpu_ms"] + io_["cpu_ms"]
    row("  floors timed alone: transport + imaging + I/O", "",
        f"{tr['cpu_per_request_ms']:.1f} + {im['cpu_ms']:.1f} + {io_['cpu_ms']:.1f} ms",
        up["cpu_per_request_ms"] / alone, errors=tr["errors"],
        note=f"imaging and I/O in a loop on idle cores; the same work costs "
             f"{fw['cpu_per_request_ms'] / alone:.2f}x that in a server at c=8")
    row("  uploads/s at c=8 (transport floor)", f"{up['per_s']:.1f}/s", f"{tr['per_s']:.1f}/s",
        up["per_s"] / tr["per_s"] if tr["per_s"] else None)
    row("  latency p50 / p95 / p99",
        f"{up['p50_ms']:.0f} / {up['p95_ms']:.0f} / {up['p99_ms']:.0f} ms",
        f"{tr['p50_ms']:.0f} / {tr['p95_ms']:.0f} / {tr['p99_ms']:.0f} ms")
    if up["other_cpu_per_request_ms"]:
        row("  PostgreSQL server CPU / upload", f"{up['other_cpu_per_request_ms'][0]:.1f} ms",
            "", note="not in the ratio above")

    big, btr = r["upload_24mp"], r["transport_24mp"]
    bim, bio = r["imaging_24mp"], r["io_24mp"]
    floor = btr["median_ms"] + bim["median_ms"] + bio["median_ms"]
    ratio = big["median_ms"] / floor
    row("24 MP upload latency (median)", f"{big['median_ms']:.0f} ms", f"{floor:.0f} ms", ratio,
        f"<= {LARGE_LATENCY_TARGET:.1f}x", ratio <= LARGE_LATENCY_TARGET and big["errors"] == 0,
        big["errors"])
    row("  floors: transport + imaging + I/O", "",
        f"{btr['median_ms']:.0f} + {bim['median_ms']:.0f} + {bio['median_ms']:.0f} ms",
        errors=btr["errors"])

    serving = r["serving"]
    for kind, label in (("i", "GET /i/ (original)"), ("t", "GET /t/ (thumbnail)")):
        static = serving.get(f"{kind}_static", {})
        for via in ("nginx", "gunicorn"):
            got = serving.get(f"{kind}_{via}", {})
            if "per_s" not in got or "per_s" not in static:
                row(f"{label} via {via}", "skipped", "", note=got.get("skipped", ""))
                continue
            ratio = got["per_s"] / static["per_s"] if static["per_s"] else float("nan")
            is_nginx = via == "nginx"
            row(f"{label} via {via}",
                f"{got['per_s']:,.0f}/s p99 {got['p99_ms']:.1f} ms",
                f"{static['per_s']:,.0f}/s p99 {static['p99_ms']:.1f} ms", ratio,
                f">= {SERVE_TARGET:.1f}x" if is_nginx else None,
                (ratio >= SERVE_TARGET and got["errors"] == 0) if is_nginx else None,
                got["errors"], note="" if is_nginx else "no target: nginx serves files")
        row(f"  static floor {kind}/ errors", "", "", errors=static.get("errors"))

    png = r["memory_png"]
    allowance = png["decoded_bytes"] + PNG_MEMORY_SLACK
    row("60 MiB PNG: peak RSS above idle", f"{png['peak_above'] / MiB:.0f} MiB",
        f"{png['decoded_bytes'] / MiB:.0f} MiB decoded + 32", png["peak_above"] / allowance,
        "<= 1.0x", png["peak_above"] <= allowance and png["errors"] == 0, png["errors"],
        note=f"HTTP {png['status']}, {png['latency_ms']:.0f} ms")
    huge = r["memory_big"]
    row(f"{huge['body_bytes'] // MiB} MiB upload: peak RSS above idle",
        f"{huge['peak_above'] / MiB:.0f} MiB",
        f"128 MiB ({huge['decoded_bytes'] / MiB:,.0f} MiB decoded)",
        huge["peak_above"] / BIG_MEMORY_LIMIT, "<= 1.0x",
        huge["peak_above"] <= BIG_MEMORY_LIMIT and huge["errors"] == 0, huge["errors"],
        note=f"HTTP {huge['status']} {huge.get('code') or ''}, {huge['latency_ms'] / 1e3:.1f} s")

    error_total = sum(x["errors"] or 0 for x in rows)
    row("errors in all phases", str(error_total), "", target="= 0",
        passed=error_total == 0)
    return rows


def print_table(rows: list[dict], report: dict) -> None:
    headers = ("figure", "ours", "floor", "ratio", "target", "result", "errors")
    cells = [[x["figure"], x["ours"], x["floor"],
              "" if x["ratio"] is None else f"{x['ratio']:.2f}x", x["target"] or "",
              x["result"] or "", "" if x["errors"] is None else str(x["errors"])]
             for x in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print()
    print(line)
    print("-" * len(line))
    for c, x in zip(cells, rows):
        text = "  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip()
        print(text + (f"   ({x['note']})" if x["note"] else ""))
    s, m = report["settings"], report["machine"]
    print(f"\n{s['workers']} worker(s), {s['database']}, "
          f"{'Redis' if s['redis'] else 'memory://'} quota counters"
          f"{', --quick' if s['quick'] else ''}; load average {m['load_before'][0]:.2f} before, "
          f"{m['load_after'][0]:.2f} after; {report['duration_s']:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--workers", type=int, default=1,
                        help="gunicorn worker processes (GUNICORN_WORKERS), default 1")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--redis", dest="redis", action="store_true", default=None,
                        help="quota counters in Redis (the default with more than one worker)")
    parser.add_argument("--no-redis", dest="redis", action="store_false")
    parser.add_argument("--uploads", type=int, help="1 MP uploads to time (400; --quick 40)")
    parser.add_argument("--rounds", type=int,
                        help="alternating rounds the 1 MP uploads and their floors are split "
                             "into (4; --quick 2)")
    parser.add_argument("--wrk-seconds", type=int, help="each wrk run's length (20; --quick 3)")
    parser.add_argument("--max-seconds", type=int, default=900,
                        help="stop everything after this long whatever happens (900)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp folder (data, logs) for a look afterwards")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 when a target fails (default: report only)")
    args = parser.parse_args()
    settings = Settings.from_args(args)

    def interrupt(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    # SIGINT too: a shell without job control starts background jobs with it ignored.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)
    # The overall bound: whatever hangs, the run ends and cleans up.
    watchdog = threading.Timer(settings.max_seconds, os.kill, (os.getpid(), signal.SIGINT))
    watchdog.daemon = True
    watchdog.start()

    RESULTS.mkdir(parents=True, exist_ok=True)
    procs = Processes()
    folder = Path(tempfile.mkdtemp(prefix="imglink-bench-"))
    procs.folders.append(folder)
    try:
        report = run(settings, procs, folder)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping what was started", file=sys.stderr)
        return 130
    finally:
        watchdog.cancel()
        procs.stop_all(keep=settings.keep)
    rows = evaluate(report)
    report["table"] = rows
    print_table(rows, report)
    text = json.dumps(report, indent=2, default=str)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    name = (f"{time.strftime('%Y%m%d-%H%M%S')}-w{settings.workers}-{settings.database}"
            f"{'-quick' if settings.quick else ''}.json")
    (RESULTS / name).write_text(text)
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"results: {shown} (and bench/results/{name})")
    failed = any(x["result"] == "FAIL" for x in rows)
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
