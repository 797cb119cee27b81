"""The one database handle: a Peewee proxy bound from a URL, opened and closed per request."""
from __future__ import annotations

from flask import Flask
from peewee import DatabaseProxy, Model, SqliteDatabase
from playhouse.db_url import connect

database = DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",  # readers never block the writer
    "synchronous": "normal",  # safe with WAL; a crash loses at most the last commit
    "foreign_keys": 1,
}


class BaseModel(Model):
    class Meta:
        database = database


def open_database(url: str) -> None:
    """Bind the proxy to the database at `url`."""
    if url.startswith("sqlite"):
        # busy timeout: concurrent writers wait their turn instead of "database is locked".
        db = connect(url, pragmas=SQLITE_PRAGMAS, timeout=30)
    else:
        db = connect(url)
    database.initialize(db)


def init_app(app: Flask) -> None:
    open_database(app.config["DATABASE_URL"])
    if app.config["AUTO_CREATE_TABLES"]:
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
    """Create the tables that do not exist yet."""
    from .models import MODELS

    with database.connection_context():
        database.create_tables(MODELS, safe=True)
