"""S3 storage against a real S3 server on 127.0.0.1: large files in parts, redirects."""
from __future__ import annotations

import hashlib
import io
import os

import boto3
import requests
from boto3.s3.transfer import TransferConfig

from conftest import S3_CREDENTIALS, BufferedClient, base_config, make_image, upload
from imglink import create_app
from imglink.core.storage import S3Storage


def storage_for(s3_server: str, bucket: str) -> S3Storage:
    return S3Storage(bucket, "images", endpoint_url=s3_server,
                     region=S3_CREDENTIALS["S3_REGION"], access_key="testing",
                     secret_key="testing")


def test_a_large_file_is_uploaded_in_parts_and_read_back(s3_server, s3_bucket, monkeypatch):
    storage = storage_for(s3_server, s3_bucket)
    parts = []
    real = storage.client.upload_part

    def upload_part(**kwargs):
        parts.append(kwargs["PartNumber"])
        return real(**kwargs)

    monkeypatch.setattr(storage.client, "upload_part", upload_part)
    data = os.urandom(20 * 1024 * 1024)  # past boto3's 8 MiB multipart threshold
    storage.save("i/ab/abcd123456.png", io.BytesIO(data), "image/png")
    assert len(parts) >= 2
    head = boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1").head_object(
        Bucket=s3_bucket, Key="images/i/ab/abcd123456.png")
    assert head["ContentType"] == "image/png" and head["ContentLength"] == len(data)
    with storage.open("i/ab/abcd123456.png") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()
    assert list(storage.keys()) == ["i/ab/abcd123456.png"]
    storage.delete("i/ab/abcd123456.png")
    assert not storage.exists("i/ab/abcd123456.png")
    assert TransferConfig().multipart_threshold < len(data)


def test_redirect_mode_sends_clients_to_a_presigned_url(tmp_path, s3_server, s3_bucket):
    app = create_app({**base_config(tmp_path), "STORAGE_URL": f"s3://{s3_bucket}/images",
                      "S3_ENDPOINT_URL": s3_server, **S3_CREDENTIALS, "S3_SERVE": "redirect"})
    app.test_client_class = BufferedClient
    client = app.test_client()
    data = make_image("PNG", (120, 90))
    image = upload(client, data, "a.png").json["data"]
    r = client.get(f"/i/{image['id']}.png")
    assert r.status_code == 302
    target = r.headers["Location"]
    assert target.startswith(f"{s3_server}/{s3_bucket}/images/i/") and "Signature" in target
    assert requests.get(target, timeout=10).content == data
    assert client.get(f"/i/{image['id']}.jpg").status_code == 404  # still the app's rules
