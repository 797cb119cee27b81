"""The one database handle: a Peewee proxy bound from a URL (the web layer opens and closes
a connection per request; commands use `database.connection_context()`)."""
from __future__ import annotations

import fcntl
import os
from urllib.parse import urlsplit

from peewee import DatabaseProxy, Model, SqliteDatabase
from playhouse.db_url import connect

database = DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",  # readers never block the writer
    # Every commit reaches the disk before the upload is answered, as the image's files do
    # (NORMAL would be consistent too, but a power loss could take back recent uploads).
    "synchronous": "full",
    "foreign_keys": 1,
    # Concurrent writers wait their turn (up to 30 s) instead of "database is locked".
    "busy_timeout": 30_000,
}
POOL_DEFAULTS = {"max_connections": 32, "stale_timeout": 300, "timeout": 10}
DATABASE_MODE = 0o600  # a new SQLite file: readable by the service's user only


class BaseModel(Model):
    class Meta:
        database = database


def open_database(url: str) -> None:
    """Bind the proxy to the database at `url` (SQLite, or PostgreSQL with a pool)."""
    scheme = urlsplit(url).scheme
    if scheme in ("sqlite", "sqlite+pool"):
        # Pooled, so a request does not pay for opening the file and setting the pragmas
        # (closing the last connection would also checkpoint the WAL every time). A pooled
        # connection moves between gunicorn's threads, one request at a time.
        db = connect("sqlite+pool" + url[len(scheme):], pragmas=SQLITE_PRAGMAS,
                     check_same_thread=False, **POOL_DEFAULTS)
    elif scheme in ("postgres", "postgresql"):
        # Each worker thread takes a connection from the pool per request and gives it back.
        db = connect("postgresql+pool" + url[len(scheme):], **POOL_DEFAULTS)
    else:
        db = connect(url)
    database.initialize(db)


def prepare_embedded() -> None:
    """Create the embedded SQLite file (the service's user's alone) and its tables: the
    embedded default needs no set-up step; other databases use `imglink db upgrade`."""
    if not is_sqlite():
        return
    # Workers booting together on a new file would race to switch it to WAL, and SQLite
    # answers such a race "database is locked" at once, so they take turns.
    with open(database.database + ".setup-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # The records (e-mails, key and token hashes) are the service's alone. SQLite
        # would make a new file 0644, and gives its -wal and -shm files the file's mode.
        os.close(os.open(database.database, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC,
                         DATABASE_MODE))
        create_tables()


def is_sqlite() -> bool:
    return isinstance(database.obj, SqliteDatabase)


def create_tables() -> None:
    """Create the tables and indexes that do not exist yet."""
    from .models import MODELS

    with database.connection_context():
        database.create_tables(MODELS, safe=True)
