"""The decode memory budget: uploads that would together hold too many decoded pixels wait
their turn, and get 503 with Retry-After when it does not come."""
from __future__ import annotations

import io
import threading
import time

import pytest
from PIL import Image as PILImage

from conftest import encode, make_image, upload
from imglink.core.db import database
from imglink.core.errors import BusyError
from imglink.core.imaging import DecodeBudget
from imglink.core.models import Image

MB = 1_000_000


def test_reservations_that_fit_run_together_and_are_given_back():
    budget = DecodeBudget(limit=10 * MB, wait_seconds=0.1)
    with budget.reserve() as first, budget.reserve() as second:
        first(4 * MB)
        second(6 * MB)
        assert budget.used == 10 * MB
        first(3 * MB)  # never shrinks: the frame already held stays counted
        assert budget.used == 10 * MB
    assert budget.used == 0


def test_a_reservation_that_does_not_fit_waits_for_the_others():
    budget = DecodeBudget(limit=10 * MB, wait_seconds=5)
    released = threading.Event()

    def holder():
        with budget.reserve() as hold:
            hold(8 * MB)
            time.sleep(0.3)
        released.set()

    thread = threading.Thread(target=holder)
    thread.start()
    time.sleep(0.1)
    with budget.reserve() as hold:
        hold(5 * MB)  # waits for the holder
        assert released.is_set() and budget.used == 5 * MB
    thread.join()


def test_a_reservation_that_never_fits_is_a_503_and_takes_nothing():
    budget = DecodeBudget(limit=10 * MB, wait_seconds=0.1)
    with budget.reserve() as hold:
        hold(8 * MB)
        with pytest.raises(BusyError) as refused:
            with budget.reserve() as other:
                other(1 * MB)
                other(4 * MB)  # grows past what is left
        assert refused.value.retry_after == 5
        assert budget.used == 8 * MB
    assert budget.used == 0


def test_an_image_larger_than_the_whole_budget_runs_alone():
    budget = DecodeBudget(limit=10 * MB, wait_seconds=0.1)
    with budget.reserve() as hold:
        hold(50 * MB)
        assert budget.used == 10 * MB
    with budget.reserve() as hold, pytest.raises(BusyError):
        hold(1 * MB)
        with budget.reserve() as other:
            other(50 * MB)


def small_budget(app, limit: int) -> DecodeBudget:
    budget = DecodeBudget(limit=limit, wait_seconds=0.2)
    app.extensions["imglink.decode_budget"] = budget
    return budget


def png(size, mode="RGB") -> bytes:
    return encode(PILImage.new(mode, size), "PNG")


def test_an_upload_over_the_budget_left_is_a_503_that_leaves_nothing(app, client):
    budget = small_budget(app, 5 * MB)
    with budget.reserve() as hold:
        hold(2 * MB)  # another upload's decode, under way
        refused = upload(client, png((1000, 1000)), "big.png")  # 4 MB decoded: does not fit
        assert refused.status_code == 503
        assert refused.json["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert refused.headers["Retry-After"] == "5"
        fits = upload(client, png((500, 500)), "small.png")  # 1 MB decoded
        assert fits.status_code == 200, fits.json
    assert budget.used == 0
    with app.app_context(), database.connection_context():
        assert [image.filename for image in Image.select()] == ["small.png"]
    assert sorted(app.extensions["imglink.storage"].keys()) == sorted(
        f"{kind}/{fits.json['data']['id'][:2]}/{fits.json['data']['id']}.png" for kind in "it")
    again = upload(client, png((1000, 1000)), "big.png")  # the budget is free again
    assert again.status_code == 200


@pytest.mark.parametrize("image, fits", [
    (png((700, 700)), True),  # RGB: one copy, 1.96 MB
    (png((700, 700), "P"), False),  # palette: resized from an RGB copy, 3.92 MB
    (make_image("JPEG", (4000, 3000)), True),  # decoded at 1/8 scale: 500 x 375
], ids=["rgb-png", "palette-png", "jpeg-drafted"])
def test_the_budget_counts_what_the_decode_really_holds(app, client, image, fits):
    budget = small_budget(app, 5 * MB)
    with budget.reserve() as hold:
        hold(2 * MB)
        response = upload(client, image)
    assert response.status_code == (200 if fits else 503), response.json


def test_a_later_frame_larger_than_the_first_is_counted_when_it_is_decoded(app, client):
    # A TIFF whose first page is tiny and whose second holds 1000 x 1000 pixels.
    pages = [PILImage.new("RGB", (10, 10)), PILImage.new("RGB", (1000, 1000))]
    out = io.BytesIO()
    pages[0].save(out, "TIFF", save_all=True, append_images=pages[1:],
                  compression="tiff_adobe_deflate")  # a small body, a large decode
    budget = small_budget(app, 5 * MB)
    with budget.reserve() as hold:
        hold(2 * MB)
        assert upload(client, out.getvalue(), "pages.tiff").status_code == 503
    assert upload(client, out.getvalue(), "pages.tiff").status_code == 200
