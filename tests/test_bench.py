"""`make bench` itself: a short run starts every server, goes through every phase without an
error, reports every figure beside its floor, and leaves nothing behind."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from conftest import require

ROOT = Path(__file__).resolve().parent.parent

FIGURES = (
    "1 MP upload: server CPU / upload",
    "floors timed alone: transport + imaging + I/O",
    "24 MP upload latency (median)",
    "GET /i/ (original) via nginx",
    "GET /i/ (original) via gunicorn",
    "GET /t/ (thumbnail) via nginx",
    "GET /t/ (thumbnail) via gunicorn",
    "60 MiB PNG: peak RSS above idle",
    "128 MiB upload: peak RSS above idle",
    "errors in all phases",
)


def test_a_short_benchmark_run_measures_every_phase_without_an_error(tmp_path):
    require("nginx")
    require("wrk")
    output = tmp_path / "report.json"
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # where the run makes its temp folder
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--uploads", "16", "--wrk-seconds", "1",
         "--max-seconds", "300", "--output", str(output)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=420)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    report = json.loads(output.read_text())
    rows = {row["figure"].strip(): row for row in report["table"]}
    assert set(FIGURES) <= set(rows), sorted(rows)
    assert all(not row["errors"] for row in rows.values()), rows
    assert rows["errors in all phases"]["result"] == "PASS"
    ratios = ("1 MP upload: server CPU / upload", "floors timed alone: transport + imaging + I/O",
              "24 MP upload latency (median)", "GET /i/ (original) via nginx",
              "GET /t/ (thumbnail) via nginx", "60 MiB PNG: peak RSS above idle",
              "128 MiB upload: peak RSS above idle")
    for figure in ratios:
        ratio = rows[figure]["ratio"]
        assert isinstance(ratio, float) and math.isfinite(ratio) and ratio > 0, (figure, ratio)

    results = report["results"]
    for phase in ("upload_1mp", "transport_1mp", "floors_in_server_1mp"):
        assert results[phase]["completed"] == 16 and results[phase]["cpu_per_request_ms"] > 0
    assert results["memory_big"]["status"] in (200, 400)
    # Every server it started is stopped, and its temp folder is gone.
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
