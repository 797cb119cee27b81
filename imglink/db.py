"""The one database handle: a Peewee proxy bound from a URL, opened and closed per request."""
from __future__ import annotations

import fcntl
import os
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from peewee import DatabaseProxy, Model, Query, SqliteDatabase
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


class Statement:
    """A query run on every upload, whose SQL peewee writes once per database.

    Writing a small query's SQL costs peewee more than SQLite takes to run it (0.15 to
    0.2 ms), and an upload runs three. `build(*values)` makes the peewee query; its
    parameters must be `values`, in that order, already in their database form
    (`Field.db_value`), so that later runs can bind them to the same SQL.
    """

    def __init__(self, build: Callable[..., Query]) -> None:
        self.build = build
        self._sql: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    def sql(self, *values: Any) -> str:
        db = database.obj
        text = self._sql.get(db)
        if text is None:
            text, params = self.build(*values).sql()
            if list(params) != list(values):
                raise ValueError(f"{text!r} takes {params!r}, not {values!r}")
            self._sql[db] = text
        return text

    def execute(self, *values: Any):
        """Run the statement with `values`; return the cursor."""
        return database.execute_sql(self.sql(*values), values)


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


def init_app(app: Flask) -> None:
    open_database(app.config["DATABASE_URL"])
    if is_sqlite():
        # The embedded default needs no set-up step; other databases use `imglink db upgrade`.
        # Workers booting together on a new file would race to switch it to WAL, and SQLite
        # answers such a race "database is locked" at once, so they take turns.
        with open(database.database + ".setup-lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            # The records (e-mails, key and token hashes) are the service's alone. SQLite
            # would make a new file 0644, and gives its -wal and -shm files the file's mode.
            os.close(os.open(database.database, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC,
                             DATABASE_MODE))
            create_tables()

    @app.before_request
    def _connect() -> None:
        database.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(exc: BaseException | None) -> None:
        if not database.is_closed():
            database.close()


def is_sqlite() -> bool:
    return isinstance(database.obj, SqliteDatabase)


def create_tables() -> None:
    """Create the tables and indexes that do not exist yet."""
    from .models import MODELS

    with database.connection_context():
        database.create_tables(MODELS, safe=True)
