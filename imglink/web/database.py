"""The database for web requests: bound at start-up, a connection per request."""
from __future__ import annotations

from flask import Flask

from ..core.db import database, open_database, prepare_embedded


def init_app(app: Flask) -> None:
    open_database(app.config["DATABASE_URL"])
    prepare_embedded()

    @app.before_request
    def _connect() -> None:
        database.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(exc: BaseException | None) -> None:
        if not database.is_closed():
            database.close()
