"""gunicorn settings for ImgLink, used by `make run` and by production alike.

Quota counters in memory (the embedded default) are exact only inside one process, so
ImgLink then runs ONE worker process with several threads. Once
IMGLINK_RATELIMIT_STORAGE_URI points at Redis, it runs two workers per core. Override
with GUNICORN_WORKERS / GUNICORN_THREADS.
"""
import json
import multiprocessing
import os

from gunicorn import util

cores = multiprocessing.cpu_count()
shared_counters = os.environ.get("IMGLINK_RATELIMIT_STORAGE_URI", "memory://") != "memory://"

workers = int(os.environ.get("GUNICORN_WORKERS", 2 * cores if shared_counters else 1))
# Two threads per core (four at least): the GIL runs one thread's Python at a time, so more
# threads than that only add GIL handoffs (8 -> 4 threads on 2 cores: about 5 % less CPU per
# upload, docs/performance.md). Behind nginx no thread ever waits on a slow client; gunicorn
# alone gives each slow client one thread.
threads = int(os.environ.get("GUNICORN_THREADS", max(4, 2 * cores)))
worker_class = "gthread"
# nginx buffers whole request bodies, so a 1 GB upload reaches gunicorn at loopback speed;
# gunicorn alone must still let a slow client finish, hence the generous timeout.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "300"))
graceful_timeout = 30  # `kill -HUP` reloads workers gracefully; in-flight uploads finish
keepalive = 5
accesslog = "-"
errorlog = "-"
# Only these addresses may set X-Forwarded-Proto for gunicorn itself; the app's own
# TRUSTED_PROXIES decides whom it believes about client IPs.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def _write_json_error(sock, status_int, reason, mesg):
    """Send gunicorn's own refusals (a malformed request line, a header over its limits) in
    the API's envelope instead of its HTML page: gunicorn answers them before the app sees
    the request. gunicorn has no setting for this, so its one error writer is replaced."""
    code = "BAD_REQUEST" if status_int < 500 else "INTERNAL_ERROR"
    body = json.dumps({"success": False,
                       "error": {"code": code, "message": mesg or reason}}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


util.write_error = _write_json_error
