"""gunicorn settings for ImgLink, used by `make run` and by production alike.

The embedded default keeps quota counters in the worker's memory, so it runs ONE worker
process with several threads: every request sees the same counters. With
IMGLINK_RATELIMIT_STORAGE_URI=redis://... set, raise GUNICORN_WORKERS freely.
"""
import multiprocessing
import os

workers = int(os.environ.get("GUNICORN_WORKERS", "1"))
threads = int(os.environ.get("GUNICORN_THREADS", str(4 * multiprocessing.cpu_count())))
worker_class = "gthread"
# Uploads of up to 1 GB from slow clients: nginx buffers them in production, but gunicorn
# alone must not kill a worker mid-upload.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "300"))
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
