from conftest import make_image, upload


def test_upload_and_fetch(client):
    r = upload(client, make_image())
    assert r.status_code == 200, r.json
    data = r.json["data"]
    assert client.get(f"/i/{data['id']}.jpg").status_code == 200
