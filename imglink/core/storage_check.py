"""Storage consistency, for `imglink storage check`: files against records, and repairs."""
from __future__ import annotations

import datetime as dt
import io
import time
from dataclasses import dataclass, field

from .errors import ImgLinkError
from .imaging import MEDIA_TYPES, Limits, process
from .images import delete_image, delete_quietly
from .models import Image
from .storage import Storage


@dataclass
class StorageReport:
    orphan_files: list[str] = field(default_factory=list)  # no record owns them
    # Files of a record still under the key an earlier version gave them, as (old, new).
    misplaced_files: list[tuple[str, str]] = field(default_factory=list)
    missing_originals: list[str] = field(default_factory=list)  # image ids
    missing_thumbnails: list[str] = field(default_factory=list)  # image ids
    unfixable: list[str] = field(default_factory=list)  # thumbnails that could not be remade

    @property
    def clean(self) -> bool:
        return not (self.orphan_files or self.misplaced_files or self.missing_originals
                    or self.missing_thumbnails)


def _earlier_key(key: str) -> str:
    """Return where ImgLink 0.1 kept the file `key` names: two folder levels, i/Ab/Cd/ID.ext."""
    kind, shard, name = key.split("/")
    return f"{kind}/{shard}/{name[2:4]}/{name}"


def check_storage(storage: Storage, limits: Limits, *, fix: bool = False,
                  grace: dt.timedelta = dt.timedelta(minutes=10)) -> StorageReport:
    """Compare stored files with image records; with `fix`, move files still kept where an
    earlier version put them, remove orphans and remake thumbnails.

    Files younger than `grace` are left alone: an upload writes its files before its record.
    """
    # Records first: every file of a record in this snapshot was written before it.
    images = {image.id: image for image in Image.select().iterator()}
    expected = {key: image.id for image in images.values()
                for key in (image.original_key, image.thumbnail_key)}
    earlier = {_earlier_key(key): key for key in expected}
    cutoff = time.time() - grace.total_seconds()
    present: set[str] = set()
    report = StorageReport()
    for key, modified in storage.entries():
        if key in expected:
            present.add(key)
        elif key in earlier:
            report.misplaced_files.append((key, earlier[key]))
        elif modified < cutoff:
            report.orphan_files.append(key)
    # A file found at its earlier key is not missing: it is moved, or waits to be.
    present.update(new for _, new in report.misplaced_files)
    for image in images.values():
        if image.original_key not in present:
            report.missing_originals.append(image.id)
        elif image.thumbnail_key not in present:
            report.missing_thumbnails.append(image.id)
    if fix:
        for old, new in report.misplaced_files:
            with storage.open(old) as file:
                storage.save(new, file, MEDIA_TYPES[new.rpartition(".")[2]])
            storage.delete(old)
        for key in report.orphan_files:
            delete_quietly(storage, key)
        for image_id in report.missing_originals:
            delete_image(images[image_id], storage)  # the image is lost; its links must 404
        for image_id in report.missing_thumbnails:
            try:
                remake_thumbnail(images[image_id], storage, limits)
            except ImgLinkError:
                report.unfixable.append(image_id)
    return report


def remake_thumbnail(image: Image, storage: Storage, limits: Limits) -> None:
    """Render the image's thumbnail again from its stored original."""
    with storage.open(image.original_key) as original:
        info = process(original, limits)
    storage.save(image.thumbnail_key, io.BytesIO(info.thumbnail), MEDIA_TYPES[info.thumbnail_ext])
