"""ImgLink: a self-hostable image host."""
from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import cli, config
from .core.imaging import DecodeBudget, keep_freed_pixel_memory
from .core.storage import make_storage
from .web import api, database, limits, pages
from .web.errors import register_error_handlers
from .web.request import ImglinkRequest

ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the ImgLink app: config layers, extensions, blueprints."""
    app = Flask(__name__, instance_relative_config=True,
                template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    app.request_class = ImglinkRequest
    app.config.from_object(config)
    app.config.from_pyfile("imglink.cfg", silent=True)
    app.config.from_prefixed_env("IMGLINK")
    if test_config:
        app.config.update(test_config)
    _derive_settings(app)

    if app.config["TRUSTED_PROXIES"]:
        n = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)

    database.init_app(app)
    limits.init_app(app)
    app.extensions["imglink.storage"] = make_storage(
        app.config["STORAGE_URL"], endpoint_url=app.config["S3_ENDPOINT_URL"],
        region=app.config["S3_REGION"], access_key=app.config["S3_ACCESS_KEY"],
        secret_key=app.config["S3_SECRET_KEY"])
    decode_limit = int(app.config["DECODE_MEMORY_LIMIT"])
    app.extensions["imglink.decode_budget"] = DecodeBudget(
        decode_limit, float(app.config["DECODE_WAIT_SECONDS"]))
    keep_freed_pixel_memory(decode_limit)
    register_error_handlers(app)
    cli.init_app(app)

    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    return app


def _derive_settings(app: Flask) -> None:
    """Fill the settings left empty from DATA_DIR, creating what the embedded default needs."""
    c = app.config
    data_dir = Path(c["DATA_DIR"]).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    c["DATA_DIR"] = str(data_dir)
    c["DATABASE_URL"] = c["DATABASE_URL"] or f"sqlite:///{data_dir / 'imglink.db'}"
    c["STORAGE_URL"] = c["STORAGE_URL"] or str(data_dir / "files")
    c["UPLOAD_TMP_DIR"] = c["UPLOAD_TMP_DIR"] or str(data_dir / "tmp")
    Path(c["UPLOAD_TMP_DIR"]).mkdir(parents=True, exist_ok=True)
    if not c["SECRET_KEY"]:
        c["SECRET_KEY"] = _shared_secret(data_dir / "secret_key")


def _shared_secret(path: Path) -> str:
    """Return the key in `path`, creating it once: every worker must sign alike."""
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)  # atomic: a racing worker keeps the first key written
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()
