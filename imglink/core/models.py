"""Peewee models. Times are naive UTC datetimes."""
from __future__ import annotations

import datetime as dt

from peewee import (
    AutoField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    BigIntegerField,
)

from .clock import utcnow
from .db import BaseModel


class Account(BaseModel):
    id = AutoField()
    email = CharField(max_length=254, unique=True)
    plan = CharField(max_length=32)
    created_at = DateTimeField(default=utcnow)


class ApiKey(BaseModel):
    id = AutoField()
    account = ForeignKeyField(Account, backref="keys", on_delete="CASCADE")
    # The first characters of the key, kept in clear to find the row and to name the key
    # to its owner; the rest is only ever compared through its hash.
    prefix = CharField(max_length=32, unique=True)
    key_hash = CharField(max_length=64)
    created_at = DateTimeField(default=utcnow)
    last_used_at = DateTimeField(null=True)
    revoked_at = DateTimeField(null=True)


class Image(BaseModel):
    id = CharField(max_length=16, primary_key=True)
    account = ForeignKeyField(Account, backref="images", null=True, on_delete="SET NULL")
    filename = CharField(max_length=255)
    size = BigIntegerField()
    width = IntegerField()
    height = IntegerField()
    format = CharField(max_length=8)
    ext = CharField(max_length=8)
    thumb_ext = CharField(max_length=8)
    album = CharField(max_length=64, null=True, index=True)
    delete_token_hash = CharField(max_length=64)
    uploaded_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField(null=True, index=True)

    @property
    def original_key(self) -> str:
        return storage_key("i", self.id, self.ext)

    @property
    def thumbnail_key(self) -> str:
        return storage_key("t", self.id, self.thumb_ext)

    def is_expired(self, now: dt.datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utcnow())


class RetiredId(BaseModel):
    """Ids of deleted images, so that no id ever names two different images."""

    id = CharField(max_length=16, primary_key=True)


MODELS = (Account, ApiKey, Image, RetiredId)


def storage_key(kind: str, image_id: str, ext: str) -> str:
    """Return the storage key of an image file: ours, never the user's name. Files are spread
    over 62 x 62 folders per kind by the id's first two characters, so that no folder grows
    huge and none is made for a single file."""
    return f"{kind}/{image_id[:2]}/{image_id}.{ext}"
