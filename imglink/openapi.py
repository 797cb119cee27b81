"""The OpenAPI 3.1 document of the /api/v1 API, served at /api/v1/openapi.json."""
from __future__ import annotations

from typing import Any


def spec(base_url: str) -> dict[str, Any]:
    """Return the OpenAPI document, with `base_url` as its server."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "ImgLink API", "version": "1.0.0"},
        "servers": [{"url": base_url + "/api/v1"}],
        "paths": {},
    }
