"""Faults at each step of an upload lose nothing and leave nothing behind; `storage check`."""
from __future__ import annotations

import io
import os
import stat

import pytest
from PIL import Image as PILImage

from conftest import make_image, upload
from imglink.core import imaging, storage as storage_module
from imglink.core.db import database
from imglink.core.models import Image, RetiredId


class Injected(RuntimeError):
    pass


def records(app) -> list[Image]:
    with app.app_context(), database.connection_context():
        return list(Image.select())


def stored(app) -> list[str]:
    return sorted(app.extensions["imglink.storage"].keys())


def fail_save(storage, monkeypatch, *, call: int, after_write: bool) -> None:
    """Make the `call`-th file an upload stores fail, before or after it is in place."""
    real = storage.create
    calls = []

    def create(key, fp, content_type=None):
        calls.append(key)
        if len(calls) == call:
            if after_write:
                real(key, fp, content_type)
            raise Injected(f"injected failure saving {key}")
        return real(key, fp, content_type)

    monkeypatch.setattr(storage, "create", create)


def assert_nothing_left(app, client, response) -> None:
    assert response.status_code == 500
    assert response.json["error"]["code"] == "INTERNAL_ERROR"
    assert "Injected" not in response.get_data(as_text=True)
    assert records(app) == []
    assert stored(app) == []
    again = upload(client, make_image())  # the service is fine afterwards
    assert again.status_code == 200
    assert len(stored(app)) == 2 and len(records(app)) == 1


@pytest.mark.parametrize("call, after_write", [
    (1, False),  # the original cannot be written
    (1, True),   # the original is in place, then the write reports a failure
    (2, False),  # the thumbnail cannot be written
    (2, True),   # both files in place, then a failure
], ids=["original-before", "original-after", "thumbnail-before", "thumbnail-after"])
def test_a_storage_failure_leaves_no_file_and_no_record(app, client, monkeypatch, call,
                                                        after_write):
    fail_save(app.extensions["imglink.storage"], monkeypatch, call=call, after_write=after_write)
    assert_nothing_left(app, client, upload(client, make_image()))


def test_a_failed_database_insert_removes_the_files(app, client, monkeypatch):
    db = database.obj
    real = db.execute_sql
    state = {"failed": False}

    def execute_sql(sql, *args, **kwargs):
        if sql.startswith('INSERT INTO "image"') and not state["failed"]:
            state["failed"] = True
            raise Injected("injected failure inserting the record")
        return real(sql, *args, **kwargs)

    monkeypatch.setattr(db, "execute_sql", execute_sql)
    assert_nothing_left(app, client, upload(client, make_image()))
    assert state["failed"]


def test_a_failure_while_thumbnailing_stores_nothing(app, client, monkeypatch):
    real = imaging._thumbnail
    state = {"failed": False}

    def thumbnail(*args, **kwargs):
        if not state["failed"]:
            state["failed"] = True
            raise Injected("injected failure while thumbnailing")
        return real(*args, **kwargs)

    monkeypatch.setattr(imaging, "_thumbnail", thumbnail)
    assert_nothing_left(app, client, upload(client, make_image()))


def test_a_failed_rename_leaves_no_temp_file(tmp_path, monkeypatch):
    local = storage_module.LocalStorage(tmp_path / "files")

    def replace(src, dst):
        raise OSError("injected: disk full at rename")

    monkeypatch.setattr(storage_module.os, "replace", replace)
    with pytest.raises(OSError):
        local.save("i/ab/abcd123456.png", io.BytesIO(b"x" * 10_000))
    assert list(local.keys()) == []


def test_a_failed_write_in_place_leaves_no_file(tmp_path, monkeypatch):
    local = storage_module.LocalStorage(tmp_path / "files")

    def fsync(fd):
        raise OSError("injected: I/O error at fsync")

    monkeypatch.setattr(storage_module.os, "fsync", fsync)
    with pytest.raises(OSError):
        local.create("i/ab/abcd123456.png", io.BytesIO(b"x" * 10_000))
    assert list(local.keys()) == []


def test_creating_a_file_never_overwrites_one(tmp_path):
    local = storage_module.LocalStorage(tmp_path / "files")
    local.create("i/ab/abcd123456.png", io.BytesIO(b"first"))
    with pytest.raises(FileExistsError):
        local.create("i/ab/abcd123456.png", io.BytesIO(b"second"))
    with local.open("i/ab/abcd123456.png") as file:
        assert file.read() == b"first"
    local.save("i/ab/abcd123456.png", io.BytesIO(b"replaced"))  # save() replaces, whole
    with local.open("i/ab/abcd123456.png") as file:
        assert file.read() == b"replaced"
    assert list(local.keys()) == ["i/ab/abcd123456.png"]


def test_stored_files_are_readable_by_the_web_server_user(tmp_path):
    # nginx serves /i/ and /t/ from the folder as another user (www-data): a file only its
    # owner may read would be a 403 there, although the app itself serves it fine.
    local = storage_module.LocalStorage(tmp_path / "files")
    umask = os.umask(0o022)  # the usual one, and systemd's default
    try:
        local.create("i/ab/abcd123456.png", io.BytesIO(b"an upload"))
        local.save("t/ab/abcd123456.png", io.BytesIO(b"a remade thumbnail"))
    finally:
        os.umask(umask)
    for key in ("i/ab/abcd123456.png", "t/ab/abcd123456.png"):
        assert stat.S_IMODE(local.path(key).stat().st_mode) == 0o644, key


def test_storage_check_reports_then_fixes(app, client, runner):
    storage = app.extensions["imglink.storage"]
    images = [upload(client, make_image("PNG", (400, 300))).json["data"] for _ in range(3)]
    intact, no_thumb, no_original = images
    with app.app_context(), database.connection_context():
        by_id = {image.id: image for image in Image.select()}
    storage.delete(by_id[no_thumb["id"]].thumbnail_key)
    storage.delete(by_id[no_original["id"]].original_key)
    storage.save("i/Zz/Zz/ZzZz000000.png", io.BytesIO(b"left behind by a killed worker"))

    dry = runner.invoke(args=["storage", "check", "--grace-minutes", "0"])
    assert dry.exit_code == 1
    assert "orphan file (found): i/Zz/Zz/ZzZz000000.png" in dry.output
    assert f"record without its original (found): {no_original['id']}" in dry.output
    assert f"record without its thumbnail (found): {no_thumb['id']}" in dry.output
    assert storage.exists("i/Zz/Zz/ZzZz000000.png")  # a dry run changes nothing

    young = runner.invoke(args=["storage", "check"])  # default grace: 10 minutes
    assert "orphan file (found)" not in young.output  # too young: maybe an upload under way

    fixed = runner.invoke(args=["storage", "check", "--fix", "--grace-minutes", "0"])
    assert fixed.exit_code == 0, fixed.output
    assert not storage.exists("i/Zz/Zz/ZzZz000000.png")
    assert f"record without its thumbnail (remade): {no_thumb['id']}" in fixed.output
    thumb = client.get(f"/t/{no_thumb['id']}.png")
    assert thumb.status_code == 200 and PILImage.open(io.BytesIO(thumb.data)).size == (320, 240)
    assert client.get(f"/api/v1/image/{no_original['id']}").status_code == 404
    with app.app_context(), database.connection_context():
        assert RetiredId.get_or_none(RetiredId.id == no_original["id"]) is not None
    assert client.get(f"/i/{intact['id']}.png").status_code == 200

    clean = runner.invoke(args=["storage", "check", "--grace-minutes", "0"])
    assert clean.exit_code == 0 and "Storage and records agree." in clean.output


def test_storage_check_moves_files_kept_in_the_earlier_two_level_layout(app, client, runner):
    # ImgLink 0.1 kept i/AbCd123456.png at i/Ab/Cd/AbCd123456.png: an upgraded store has
    # every file there, and a check must move them, never call them orphans or lost.
    storage = app.extensions["imglink.storage"]
    data = upload(client, make_image("PNG", (400, 300))).json["data"]
    with app.app_context(), database.connection_context():
        image = Image.get_by_id(data["id"])
    moved = {}
    for key in (image.original_key, image.thumbnail_key):
        old = _earlier(key)
        with storage.open(key) as file:
            content = file.read()
        storage.save(old, io.BytesIO(content))
        storage.delete(key)
        moved[old] = (key, content)
    assert client.get(f"/i/{image.id}.png").status_code == 404

    dry = runner.invoke(args=["storage", "check"])
    assert dry.exit_code == 1
    for old, (new, _) in moved.items():
        assert f"file in an earlier layout (found): {old} -> {new}" in dry.output
        assert storage.exists(old)
    assert "orphan file (" not in dry.output and "record without" not in dry.output
    assert "2 files to move, 0 orphan files, 0 missing originals" in dry.output

    fixed = runner.invoke(args=["storage", "check", "--fix"])
    assert fixed.exit_code == 0, fixed.output
    for old, (new, content) in moved.items():
        assert f"file in an earlier layout (moved): {old} -> {new}" in fixed.output
        assert not storage.exists(old)
        with storage.open(new) as file:
            assert file.read() == content
    served = client.get(f"/i/{image.id}.png")
    assert served.status_code == 200 and served.data == moved[_earlier(image.original_key)][1]
    assert client.get(f"/t/{image.id}.{image.thumb_ext}").status_code == 200
    clean = runner.invoke(args=["storage", "check"])
    assert clean.exit_code == 0 and "Storage and records agree." in clean.output


def _earlier(key: str) -> str:
    kind, shard, name = key.split("/")
    return f"{kind}/{shard}/{name[2:4]}/{name}"


def test_storage_check_removes_a_temp_file_left_by_a_killed_upload(tmp_path):
    local = storage_module.LocalStorage(tmp_path / "files")
    local.save("i/ab/abcd123456.png", io.BytesIO(b"kept"))
    leftover = tmp_path / "files" / "i" / "ab" / ".tmp-x1y2z3"
    leftover.write_bytes(b"half an upload")
    assert sorted(local.keys()) == ["i/ab/.tmp-x1y2z3", "i/ab/abcd123456.png"]
    local.delete("i/ab/.tmp-x1y2z3")
    assert not leftover.exists()
    for bad in ("../x", "i/../../etc/passwd", "/etc/passwd", "i//x", "i/./x", ""):
        with pytest.raises(ValueError):
            local.path(bad)
