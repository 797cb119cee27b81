"""Random public ids, API keys and secret tokens: how they are made, checked and hashed."""
from __future__ import annotations

import hashlib
import re
import secrets
import string
import zlib

ALPHABET = string.digits + string.ascii_letters

IMAGE_ID_LENGTH = 10  # base62: about 59 bits from the CSPRNG
IMAGE_ID_PATTERN = re.compile(r"[A-Za-z0-9]{%d}" % IMAGE_ID_LENGTH)

KEY_PREFIX = "ilk_"
KEY_BODY_LENGTH = 24  # base62: about 143 random bits
KEY_CHECKSUM_LENGTH = 6
KEY_LOOKUP_LENGTH = len(KEY_PREFIX) + 8  # kept in clear to find the row and name the key
KEY_LENGTH = len(KEY_PREFIX) + KEY_BODY_LENGTH + KEY_CHECKSUM_LENGTH


def _base62(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


def random_base62(length: int) -> str:
    """Return `length` random base62 characters, from one read of the system's CSPRNG (each
    such read lets other threads run, so one per upload, not one per character)."""
    return _base62(secrets.randbelow(62 ** length), length)


def random_image_id() -> str:
    return random_base62(IMAGE_ID_LENGTH)


def new_token() -> str:
    """Return a new secret token (delete tokens): 192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


def hash_secret(secret: str) -> str:
    """Hash a key or token for storage. They carry 143 random bits or more, so a fast hash is
    enough: no salt or stretching needed."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), KEY_CHECKSUM_LENGTH)


def generate_key() -> str:
    """Return a new API key: `ilk_`, 24 random base62 characters and a 6-character checksum."""
    body = random_base62(KEY_BODY_LENGTH)
    return KEY_PREFIX + body + _checksum(body)


def key_prefix(key: str) -> str:
    return key[:KEY_LOOKUP_LENGTH]


def is_well_formed_key(key: str) -> bool:
    body = key[len(KEY_PREFIX):-KEY_CHECKSUM_LENGTH]
    return (len(key) == KEY_LENGTH and key.startswith(KEY_PREFIX)
            and all(c in ALPHABET for c in key[len(KEY_PREFIX):])
            and _checksum(body) == key[-KEY_CHECKSUM_LENGTH:])
