"""Profile ImgLink's upload path on the benchmark's 1 MP and 24 MP JPEGs (and the 60 MiB PNG).

    .venv/bin/python bench/profile_upload.py                # pyinstrument, in process
    .venv/bin/python bench/profile_upload.py --py-spy 20    # py-spy on a live gunicorn worker
    .venv/bin/python bench/profile_upload.py --stages 300   # CPU per upload stage, in process

The first mode builds the app with create_app() on a temp data dir and posts each input
through Flask's test client (Werkzeug's multipart parser, the views, the services, Pillow,
storage and SQLite: everything but gunicorn's socket code) under pyinstrument; it prints
the call tree and writes bench/results/profile-*.html. The second starts gunicorn exactly as
bench/run.py does, sends 1 MP uploads at concurrency 8 for that many seconds while
`py-spy record` samples the worker, and prints the functions with the most samples, by own
time and by total time (samples of threads that are not idle: waiting for the GIL or in
fsync counts). The third adds up thread CPU time and wall time per stage of the upload
path (functions wrapped by name; a renamed one is reported and skipped). The first two need
`pip install pyinstrument py-spy` in the venv.
"""
from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (bench/run.py, beside this file)

# What each profile sends, and how many times.
CASES = (("jpeg_1mp", 100), ("jpeg_24mp", 5), ("png_60mib", 1))


def profile_in_process(repeats: dict[str, int], show_all: bool) -> None:
    try:
        from pyinstrument import Profiler
    except ImportError:
        sys.exit("pip install pyinstrument into the venv first")
    sys.path.insert(0, str(bench.ROOT))
    from imglink import create_app, services
    from imglink.core.db import database

    inputs = bench.make_inputs(bench.RESULTS / "inputs")
    folder = Path(tempfile.mkdtemp(prefix="imglink-profile-"))
    try:
        app = create_app({"DATA_DIR": str(folder / "data"), "SECRET_KEY": "profile",
                          "RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": "memory://"})
        with app.app_context(), database.connection_context():
            _account, key = services.create_account("profile@example.com", "enterprise",
                                                    app.config["PLANS"])
        client = app.test_client()
        headers = {"Authorization": f"Bearer {key}"}
        for name, count in CASES:
            count = repeats.get(name, count)
            body, content_type = inputs[name].body()
            post = lambda: client.post("/api/v1/upload", data=body,  # noqa: E731
                                       headers={**headers, "Content-Type": content_type})
            assert post().status_code == 200  # warm up outside the profile
            profiler = Profiler(interval=0.0005)
            profiler.start()
            for _ in range(count):
                response = post()
                assert response.status_code == 200, response.text
            profiler.stop()
            print(f"\n=== {name}: {count} upload(s) of {inputs[name].size:,} bytes ===")
            print(profiler.output_text(unicode=False, color=False, show_all=show_all))
            out = bench.RESULTS / f"profile-{name}.html"
            out.write_text(profiler.output_html())
            print(f"(call tree as HTML: {out.relative_to(bench.ROOT)})")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# Functions whose CPU and wall time --stages adds up, as (module, attribute, label).
STAGES = (
    ("imglink.web.request", "ImglinkRequest._load_form_data", "multipart parse (Werkzeug)"),
    ("imglink.core.accounts", "authenticate", "API key lookup (SELECT + join)"),
    ("imglink.core.uploads", "process", "imaging.process: decode, thumbnail"),
    ("imglink.core.uploads", "_strip_metadata", "metadata.strip (plan + copy)"),
    ("imglink.core.uploads", "_store", "_store: id, 2 files, INSERT + commit"),
    ("imglink.core.uploads", "_new_image_id", "  _new_image_id (SELECT)"),
    ("imglink.core.storage", "LocalStorage.create", "  LocalStorage.create (x2: original, thumb)"),
)


def stage_times(count: int) -> None:
    """Add up the CPU (thread_time) and wall time of each upload stage over `count` 1 MP
    uploads in process, with the request hooks (database connect/close, quota check)."""
    import functools
    import importlib
    sys.path.insert(0, str(bench.ROOT))
    from imglink import create_app, services
    from imglink.core.db import database

    cpu: collections.Counter[str] = collections.Counter()
    wall: collections.Counter[str] = collections.Counter()

    def timed(fn, label):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            c, w = time.thread_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                cpu[label] += time.thread_time() - c
                wall[label] += time.perf_counter() - w
        return wrapper

    for module_name, path, label in STAGES:
        owner = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        if hasattr(owner, name):
            setattr(owner, name, timed(getattr(owner, name), label))
        else:
            print(f"(no {module_name}.{path} any more: not timed)")
    inputs = bench.make_inputs(bench.RESULTS / "inputs")
    folder = Path(tempfile.mkdtemp(prefix="imglink-profile-"))
    try:
        app = create_app({"DATA_DIR": str(folder / "data"), "SECRET_KEY": "profile",
                          "RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": "memory://"})
        for hooks, kind in ((app.before_request_funcs, "before_request"),
                            (app.teardown_request_funcs, "teardown_request")):
            hooks[None] = [timed(f, f"{kind} {f.__name__}") for f in hooks.get(None, [])]
        app.wsgi_app = timed(app.wsgi_app, "the whole request (WSGI app)")
        with app.app_context(), database.connection_context():
            _account, key = services.create_account("profile@example.com", "enterprise",
                                                    app.config["PLANS"])
        client = app.test_client()
        body, content_type = inputs["jpeg_1mp"].body()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
        for _ in range(10):  # warm up
            assert client.post("/api/v1/upload", data=body, headers=headers).status_code == 200
        cpu.clear()
        wall.clear()
        for _ in range(count):
            response = client.post("/api/v1/upload", data=body, headers=headers)
            assert response.status_code == 200, response.text
        print(f"{count} uploads of the 1 MP JPEG in process; per upload:")
        print(f"{'CPU ms':>8} {'wall ms':>8}  stage")
        for label, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
            print(f"{seconds / count * 1e3:8.2f} {wall[label] / count * 1e3:8.2f}  {label}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def profile_live(seconds: int) -> None:
    spy = bench.BIN / "py-spy"
    if not spy.exists():
        sys.exit("pip install py-spy into the venv first")
    settings = bench.Settings(quick=True, workers=1, database="sqlite", redis=False, uploads=0,
                              concurrency=8, large_repeats=0, floor_repeats=0, wrk_seconds=0,
                              big_body=0, max_seconds=seconds + 120, keep=False)
    inputs = bench.make_inputs(bench.RESULTS / "inputs")
    folder = Path(tempfile.mkdtemp(prefix="imglink-profile-"))
    procs = bench.Processes()
    try:
        stack = bench.start_stack(procs, settings, folder)
        workers = [pid for pid in bench.proc_tree(stack.app.pid) if pid != stack.app.pid]
        body, content_type = inputs["jpeg_1mp"].body()
        auth = {"Authorization": f"Bearer {stack.api_key}"}
        url = stack.app_url + "/api/v1/upload"
        bench.load_test(url, body, content_type, auth, 16, 8, stack.app.pid)  # warm up
        raw = folder / "py-spy.txt"
        record = subprocess.Popen(
            [str(spy), "record", "--pid", str(workers[0]), "--duration", str(seconds),
             "--rate", "250", "--format", "raw", "--output", str(raw), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        stop = threading.Event()
        sent = [0]

        def load() -> None:
            while not stop.is_set():
                bench.load_test(url, body, content_type, auth, 32, 8, stack.app.pid)
                sent[0] += 32

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        try:
            _, err = record.communicate(timeout=seconds + 60)
        finally:
            if record.poll() is None:
                record.kill()
            stop.set()
            loader.join(timeout=120)
        if not raw.exists():
            sys.exit(f"py-spy recorded nothing: {err.decode(errors='replace')[-500:]}")
        print(f"py-spy: {seconds} s of {sent[0]} 1 MP uploads at concurrency 8, "
              f"worker {workers[0]}")
        summarize(raw.read_text())
    finally:
        procs.stop_all()
        shutil.rmtree(folder, ignore_errors=True)


def summarize(collapsed: str, top: int = 25) -> None:
    """Print the frames with the most samples, by own time and by total time, from
    py-spy's collapsed stacks, leaving out threads that were only waiting."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")[1:]  # the first entry names the thread
        if not frames or _idle(frames[-1]):
            continue
        n = int(count)
        samples += n
        own[_short(frames[-1])] += n
        for frame in set(map(_short, frames)):
            total[frame] += n
    print(f"\n{samples} busy samples; by own time:")
    for frame, n in own.most_common(top):
        print(f"  {100 * n / samples:5.1f}%  {frame}")
    print("\nby total time (the frame and everything it called):")
    for frame, n in total.most_common(top):
        print(f"  {100 * n / samples:5.1f}%  {frame}")


IDLE = ("wait (threading.py", "select (selectors.py", "_worker (concurrent/futures/thread.py",
        "accept (socket.py", "sleep (gunicorn", "poll (selectors.py", "get (queue.py")


def _idle(frame: str) -> bool:
    return any(frame.startswith(x) for x in IDLE) or "(idle)" in frame


def _short(frame: str) -> str:
    """Shorten 'func (/long/path/site-packages/pkg/mod.py:12)' to 'func (pkg/mod.py)'."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
    for marker in ("site-packages/", "/lib/python3.11/", str(bench.ROOT) + "/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--py-spy", type=int, metavar="SECONDS",
                        help="sample a live gunicorn worker under 1 MP uploads instead")
    parser.add_argument("--stages", type=int, metavar="COUNT",
                        help="CPU and wall time per upload stage over COUNT 1 MP uploads")
    parser.add_argument("--repeats", type=int, help="uploads per input (100 / 5 / 1)")
    parser.add_argument("--show-all", action="store_true", help="pyinstrument's full tree")
    args = parser.parse_args()
    if args.py_spy:
        profile_live(min(args.py_spy, 120))
    elif args.stages:
        stage_times(min(args.stages, 2000))
    else:
        repeats = {name: args.repeats for name, _ in CASES} if args.repeats else {}
        profile_in_process(repeats, args.show_all)


if __name__ == "__main__":
    main()
