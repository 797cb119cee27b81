"""The OpenAPI document: valid, complete, and true of the running app.

The static tests read the document from a test app; the live ones load it from a real gunicorn
and let Schemathesis hold every answer to it: generated requests (valid and invalid) for every
operation, then hand-made ones for the answers generation cannot reach (stored images, other
people's images, spent quotas, oversized bodies, a dead quota store).
"""
from __future__ import annotations

import copy
import http.client
import json
import re
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate as validate_openapi
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               negative_data_rejection,
                                               response_headers_conformance,
                                               response_schema_conformance,
                                               status_code_conformance, unsupported_method)

from conftest import BufferedClient, base_config, free_port, make_image
from imglink import config as default_config
from imglink import create_app
from imglink.core import errors as domain_errors
from imglink.web import errors, openapi

# Every code API.md and imglink/errors.py name; the document must offer exactly these.
CONTRACT_CODES = {
    "MISSING_FILE", "INVALID_FILE_TYPE", "INVALID_IMAGE", "INVALID_PARAMETER",
    "BULK_LIMIT_EXCEEDED", "UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND", "METHOD_NOT_ALLOWED",
    "FILE_TOO_LARGE", "RATE_LIMIT_EXCEEDED", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE",
    "BAD_REQUEST",
}
# What every answer must satisfy, generated or hand-made.
RESPONSE_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
                   response_schema_conformance, response_headers_conformance]
# Generated requests also: invalid data is refused, undocumented methods are 405 with Allow.
FUZZ_CHECKS = [*RESPONSE_CHECKS, negative_data_rejection, unsupported_method]

# Successes answered with a standard object of their own rather than the envelope.
BARE = {("/openapi.json", "200"), ("/oembed", "200")}

MAX_EXAMPLES = 25
SEED = 20250707


def make_app(tmp_path, **config):
    app = create_app({**base_config(tmp_path), **config})
    app.test_client_class = BufferedClient
    return app


def document_of(app) -> dict:
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


@pytest.fixture
def document(tmp_path) -> dict:
    return document_of(make_app(tmp_path))


# The document itself.

def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1.")
    validate_openapi(document)  # the OpenAPI 3.1 meta-schema, plus references and parameters
    # Schemathesis reads it too (its own meta-schema check), every operation included.
    schema = schemathesis.openapi.from_dict(copy.deepcopy(document))
    schema.validate()
    problems = [result.err() for result in schema.get_all_operations()
                if not hasattr(result, "ok")]
    assert problems == []
    assert len(list(schema.get_all_operations())) == sum(
        method != "parameters" for item in document["paths"].values() for method in item)


def normalized(path: str) -> str:
    """Name every path parameter alike: Flask's <image_id> and OpenAPI's {id} are one route."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def test_every_api_route_is_documented_and_every_documented_path_exists(tmp_path):
    app = make_app(tmp_path)
    document = document_of(app)
    prefix = urlsplit(document["servers"][0]["url"]).path
    assert prefix == "/api/v1"
    routed = {(normalized(rule.rule), method.lower())
              for rule in app.url_map.iter_rules() if rule.rule.startswith(prefix + "/")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(normalized(prefix + path), method)
                  for path, item in document["paths"].items()
                  for method in item if method != "parameters"}
    assert routed == documented


def test_error_codes_are_the_contract_and_the_apps(document):
    offered = set(document["components"]["schemas"]["ErrorEnvelope"]["properties"]["error"]
                  ["properties"]["code"]["enum"])
    raised = ({cls.code for cls in domain_errors.ImgLinkError.__subclasses__()}
              | {domain_errors.ImgLinkError.code})
    assert offered == CONTRACT_CODES | raised | set(errors.HTTP_CODES.values())


def test_every_operation_answers_in_the_envelope_with_its_failures(document):
    statuses = {
        ("/upload", "post"): {"200", "400", "401", "413", "429", "500", "503"},
        ("/upload/bulk", "post"): {"200", "400", "401", "413", "429", "500", "503"},
        ("/image/{id}", "get"): {"200", "401", "404", "429", "500", "503"},
        ("/image/{id}", "delete"): {"200", "401", "403", "404", "429", "500", "503"},
        ("/limits", "get"): {"200", "401", "429", "500", "503"},
        ("/account", "get"): {"200", "401", "429", "500", "503"},
        ("/health", "get"): {"200", "500", "503"},
        ("/openapi.json", "get"): {"200", "500"},
        ("/oembed", "get"): {"200", "400", "401", "404", "429", "500", "503"},
    }
    operations = {(path, method): operation for path, item in document["paths"].items()
                  for method, operation in item.items() if method != "parameters"}
    assert {key: set(op["responses"]) for key, op in operations.items()} == statuses
    components = document["components"]
    for (path, method), operation in operations.items():
        for status, answer in operation["responses"].items():
            if "$ref" in answer:
                answer = components["responses"][answer["$ref"].rsplit("/", 1)[1]]
            schema = answer["content"]["application/json"]["schema"]
            if (path, status) in BARE:
                continue
            envelope = "SuccessEnvelope" if status == "200" else "ErrorEnvelope"
            assert schema["allOf"][0] == {"$ref": f"#/components/schemas/{envelope}"}
    assert set(components["responses"]["TooManyRequests"]["headers"]) == {
        "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"}


def test_document_follows_the_deployment_settings(tmp_path):
    plans = {"anonymous": {"hourly": 5, "max_file": 1000, "bulk": 2},
             "team": {"hourly": None, "max_file": 5000, "bulk": None}}
    document = document_of(make_app(tmp_path, ALBUM_MAX_LENGTH=12, MAX_EXPIRY_HOURS=48,
                                    FILENAME_MAX_LENGTH=40, PLANS=plans,
                                    ALLOWED_FORMATS=["PNG", "GIF"]))
    fields = (document["paths"]["/upload"]["post"]["requestBody"]["content"]
              ["multipart/form-data"]["schema"]["properties"])
    assert fields["album"]["maxLength"] == 12
    assert re.fullmatch(fields["expiry"]["pattern"], "48")
    assert not re.fullmatch(fields["expiry"]["pattern"], "49")
    schemas = document["components"]["schemas"]
    assert schemas["Limits"]["properties"]["plan"]["enum"] == ["anonymous", "team"]
    assert schemas["Image"]["properties"]["format"]["enum"] == ["PNG", "GIF"]
    assert schemas["Image"]["properties"]["filename"]["maxLength"] == 40
    assert schemas["Image"]["properties"]["album"]["maxLength"] == 12


@pytest.mark.parametrize("maximum", [0, 7, 10, 48, 99, 100, 8760, 87600, 100_000])
def test_whole_number_pattern_matches_the_upload_rule(maximum):
    pattern = re.compile(openapi.whole_number_pattern(maximum))
    # The upload's rule for expiry: empty, or 1 to 9 digits worth at most the maximum.
    for number in [*range(0, 1200), *range(maximum - 50, maximum + 50), 10 ** 8, 10 ** 9]:
        for text in (str(number), f"00{number}", f"{number:09d}"):
            accepted = bool(re.fullmatch(r"[0-9]{1,9}", text)) and int(text) <= maximum
            assert bool(pattern.fullmatch(text)) == accepted, text
    assert pattern.fullmatch("")
    for text in ("-1", "1.5", "1e3", " 1", "x", "１"):
        assert not pattern.fullmatch(text)


def test_expiry_pattern_is_what_the_upload_accepts(tmp_path):
    app = make_app(tmp_path, RATELIMIT_ENABLED=False)
    fields = (document_of(app)["paths"]["/upload"]["post"]["requestBody"]["content"]
              ["multipart/form-data"]["schema"]["properties"])
    pattern = re.compile(fields["expiry"]["pattern"])
    top = app.config["MAX_EXPIRY_HOURS"]
    client = app.test_client()
    for text in ("", "0", "1", "24", str(top - 1), str(top), str(top + 1), f"0{top}",
                 f"{top:09d}", f"{top:010d}", "9" * 9, "1" * 10, "-1", "+1", "1.0", "1e2",
                 "0x10", "٣", "²"):
        # No file: a good expiry gets as far as MISSING_FILE, a bad one stops at INVALID_PARAMETER.
        code = client.post("/api/v1/upload", data={"expiry": text},
                           content_type="multipart/form-data").get_json()["error"]["code"]
        documented = bool(pattern.fullmatch(text)) and len(text) <= fields["expiry"]["maxLength"]
        assert documented == (code == "MISSING_FILE"), (text, code)


# The live app against the document: generated requests.
#
# Schemathesis's lazy loader (`schemathesis.pytest.from_fixture`) does not run on pytest 9.2
# (it sets `Node._nodeid`, which pytest 9.2 no longer has), so the tests are generated from
# the document a default deployment serves, and each one first checks that the live server
# serves that very document.

def default_document() -> dict:
    """Return the document of a default deployment, as JSON would carry it."""
    app = Flask(__name__)
    app.config.from_object(default_config)
    with app.app_context():
        return json.loads(json.dumps(openapi.spec("http://imglink.invalid")))


DEFAULT_DOCUMENT = default_document()
FUZZ_SCHEMA = schemathesis.openapi.from_dict(
    copy.deepcopy(DEFAULT_DOCUMENT), config=schemathesis.Config.from_dict({
        "seed": SEED,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True,
                       "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "warnings": False,
    }))


@pytest.fixture
def fuzz_target(live_server) -> tuple[str, dict[str, str]]:
    """Return the live API's base URL and headers with an enterprise key (no quota to spend)."""
    served = requests.get(live_server.url + "/api/v1/openapi.json", timeout=30).json()
    assert served == {**DEFAULT_DOCUMENT, "servers": served["servers"]}
    key = live_server.create_key("enterprise", "fuzz@example.com")
    return served["servers"][0]["url"], {"Authorization": f"Bearer {key}"}


@pytest.mark.live
@FUZZ_SCHEMA.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one server per operation
def test_live_app_answers_as_documented(case, fuzz_target):
    base_url, headers = fuzz_target
    case.call_and_validate(base_url=base_url, headers=headers, checks=FUZZ_CHECKS, timeout=30)


# The live app against the document: hand-made requests for what generation cannot reach.

def checks_for(status: int) -> list:
    """Return the checks for an answer expected to have `status` (some are meant to be 5xx)."""
    return [c for c in RESPONSE_CHECKS if status < 500 or c is not not_a_server_error]


class Api:
    """Send requests through the document's operations and check each answer against it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.schema = schemathesis.openapi.from_url(url + "/api/v1/openapi.json",
                                                    config=schemathesis.Config())

    def case(self, method: str, path: str, key: str | None = None, *, headers=None,
             **kwargs):
        headers = dict(headers or {})
        if key:
            headers["Authorization"] = f"Bearer {key}"
        template = re.sub(r"^/image/[^/]+$", "/image/{id}", path)
        operation = self.schema[template][method.upper()]
        if template != path:
            kwargs["path_parameters"] = {"id": path.rsplit("/", 1)[1]}
        if "body" in kwargs:
            kwargs.setdefault("media_type", "multipart/form-data")
        return operation.Case(headers=headers, **kwargs)

    def call(self, method: str, path: str, key: str | None = None, *, status: int, code=None,
             **kwargs) -> dict:
        """Send one request, check the answer against the document, and return its JSON."""
        case = self.case(method, path, key, **kwargs)
        response = case.call(timeout=30)
        case.validate_response(response, checks=checks_for(status))
        assert response.status_code == status, response.text
        body = response.json()
        if code is not None:
            assert body["error"]["code"] == code, body
        return body

    def call_raw(self, method: str, path: str, headers: dict[str, str]) -> schemathesis.Response:
        """Send bare headers (no body), as a client announcing a large upload does."""
        host, port = urlsplit(self.url).netloc.split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            connection.putrequest(method, "/api/v1" + path)
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.endheaders()
            raw = connection.getresponse()
            content = raw.read()
        finally:
            connection.close()
        response = schemathesis.Response(
            status_code=raw.status, headers={k.lower(): [v] for k, v in raw.getheaders()},
            content=content, elapsed=0.0, verify=True,
            request=requests.Request(method, self.url + "/api/v1" + path).prepare())
        self.case(method, path).validate_response(response, checks=checks_for(raw.status))
        return response


FORMATS = ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"]


@pytest.mark.live
def test_live_images_and_accounts_as_documented(live_server):
    api = Api(live_server.url)
    owner = live_server.create_key("free", "owner@example.com")
    other = live_server.create_key("free", "other@example.com")

    for fmt in FORMATS:  # anonymous: quota headers are numbers
        stored = api.call("POST", "/upload", body={
            "file": make_image(fmt), "album": "holiday", "expiry": "24"}, status=200)["data"]
        assert stored["format"] == fmt and stored["expires_at"]
        assert api.call("GET", f"/image/{stored['id']}", status=200)["data"]["id"] == stored["id"]
        api.call("DELETE", f"/image/{stored['id']}", headers={"X-Delete-Token": "wrong"},
                 status=403, code="FORBIDDEN")
        api.call("DELETE", f"/image/{stored['id']}",
                 headers={"X-Delete-Token": stored["delete_token"]}, status=200)
        api.call("GET", f"/image/{stored['id']}", status=404, code="NOT_FOUND")
        api.call("DELETE", f"/image/{stored['id']}", owner, status=404, code="NOT_FOUND")

    mine = api.call("POST", "/upload", owner, body={"file": make_image()}, status=200)["data"]
    assert mine["album"] is None and mine["expires_at"] is None
    api.call("DELETE", f"/image/{mine['id']}", status=401, code="UNAUTHORIZED")
    api.call("DELETE", f"/image/{mine['id']}", other, status=403, code="FORBIDDEN")
    account = api.call("GET", "/account", owner, status=200)["data"]
    assert account["images"] == 1 and account["plan"] == "free"
    api.call("DELETE", f"/image/{mine['id']}", owner, status=200)

    bulk = api.call("POST", "/upload/bulk", owner, body={"files": [
        make_image("PNG"), b"not an image", make_image("GIF")]}, status=200)["data"]
    assert [image["format"] for image in bulk["images"]] == ["PNG", "GIF"]
    assert [(e["index"], e["error"]["code"]) for e in bulk["errors"]] == [
        (1, "INVALID_FILE_TYPE")]
    stored = bulk["images"][0]
    embed = api.call("GET", "/oembed", query={"url": stored["links"]["view_page"],
                                              "maxwidth": 16}, status=200)
    assert (embed["url"], embed["width"]) == (stored["links"]["direct"], 16)
    api.call("GET", "/oembed", query={"url": stored["links"]["direct"], "format": "xml"},
             status=400, code="INVALID_PARAMETER")
    api.call("GET", "/oembed", query={"url": "https://elsewhere.example/image/abcdefghij"},
             status=404, code="NOT_FOUND")

    truncated = make_image("PNG")[:60]
    refused = api.call("POST", "/upload/bulk", body={"files": [truncated, truncated]},
                       status=400, code="INVALID_IMAGE")
    assert [e["error"]["code"] for e in refused["error"]["details"]] == ["INVALID_IMAGE"] * 2
    # Refused for different reasons: 400 INVALID_IMAGE, each file's own code in details.
    refused = api.call("POST", "/upload/bulk", body={"files": [truncated, b"text"]},
                       status=400, code="INVALID_IMAGE")
    assert [e["error"]["code"] for e in refused["error"]["details"]] == [
        "INVALID_IMAGE", "INVALID_FILE_TYPE"]
    api.call("POST", "/upload/bulk", body={"album": "x"}, status=400, code="MISSING_FILE")
    api.call("POST", "/upload", body={"file": make_image(), "expiry": "-1"}, status=400,
             code="INVALID_PARAMETER")
    api.call("POST", "/upload", body={"file": make_image(), "album": "x" * 65}, status=400,
             code="INVALID_PARAMETER")
    api.call("POST", "/upload", body={"file": b"%PDF-1.4"}, status=400,
             code="INVALID_FILE_TYPE")

    api.call("GET", "/account", status=401, code="UNAUTHORIZED")
    assert api.call("GET", "/limits", status=200)["data"]["plan"] == "anonymous"
    assert api.call("GET", "/limits", owner, status=200)["data"]["plan"] == "free"
    api.call("GET", "/health", status=200)
    bad_key = "ilk_" + "0" * 30
    for method, path in (("GET", "/limits"), ("GET", "/account"), ("GET", "/image/abcdefghij"),
                         ("DELETE", "/image/abcdefghij")):
        api.call(method, path, bad_key, status=401, code="UNAUTHORIZED")
    api.call("POST", "/upload", bad_key, body={"file": make_image()}, status=401,
             code="UNAUTHORIZED")
    api.call("GET", "/limits", query={"api_key": owner}, status=401, code="UNAUTHORIZED")
    api.call("GET", "/oembed", bad_key, query={"url": mine["links"]["view_page"]}, status=401,
             code="UNAUTHORIZED")
    # Not counted, so credentials are not even read.
    api.call("GET", "/health", bad_key, status=200)
    api.call("GET", "/openapi.json", bad_key, status=200)


@pytest.mark.live
def test_live_limits_as_documented(start_server):
    server = start_server(IMGLINK_PLANS__anonymous__hourly="5",
                          IMGLINK_PLANS__anonymous__max_file="2000",
                          IMGLINK_PLANS__anonymous__bulk="2")
    api = Api(server.url)
    api.call("POST", "/upload", body={"file": b"\0" * 5000}, status=413, code="FILE_TOO_LARGE")
    # A body plainly over the plan's limit is refused from its headers alone.
    early = api.call_raw("POST", "/upload", {
        "Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(2 ** 40)})
    assert early.status_code == 413
    api.call("POST", "/upload/bulk", body={"files": [make_image()] * 3}, status=400,
             code="BULK_LIMIT_EXCEEDED")
    api.call("GET", "/limits", status=200)
    api.call("GET", "/limits", status=200)
    api.call("GET", "/limits", status=429, code="RATE_LIMIT_EXCEEDED")
    api.call("POST", "/upload", body={"file": make_image()}, status=429,
             code="RATE_LIMIT_EXCEEDED")
    api.call("GET", "/health", status=200)  # never counted


@pytest.mark.live
def test_live_dead_quota_store_as_documented(start_server):
    # Nothing listens there: every counted request finds the quota store down.
    server = start_server(IMGLINK_RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{free_port()}/0",
                          GUNICORN_WORKERS="1")
    api = Api(server.url)
    api.call("GET", "/limits", status=503, code="SERVICE_UNAVAILABLE")
    api.call("POST", "/upload", body={"file": make_image()}, status=503,
             code="SERVICE_UNAVAILABLE")
    health = api.call("GET", "/health", status=503, code="SERVICE_UNAVAILABLE")
    assert health["error"]["details"] == {"quota_store": "unreachable"}
