"""Every setting ImgLink reads, with its default and why.

Settings are layered in one order by `create_app`: these defaults, then `imglink.cfg` in the
instance folder, then `IMGLINK_*` environment variables (`IMGLINK_DATA_DIR=/srv/imglink`;
nested keys with `__`, such as `IMGLINK_PLANS__free__hourly=5000`), then the test config.
"""

MiB = 1024 * 1024

# Where the embedded default keeps its database, files, upload temp files and secret key.
DATA_DIR = "./data"

# Upload bodies are streamed into temp files here. Empty means DATA_DIR/tmp: on the same
# disk as the files, not a RAM-backed /tmp.
UPLOAD_TMP_DIR = None

# Signs delete-page and CSRF tokens. Left empty, a random key is made once and kept in
# DATA_DIR/secret_key so that every worker and restart shares it.
SECRET_KEY = None

# Peewee database URL (playhouse.db_url). Empty means SQLite at DATA_DIR/imglink.db.
DATABASE_URL = None

# Where image files live. Empty means the local folder DATA_DIR/files.
STORAGE_URL = None

# S3-compatible storage (STORAGE_URL=s3://bucket/prefix): endpoint (empty for AWS itself),
# region and credentials (empty: boto3's own chain: environment, ~/.aws, instance role).
S3_ENDPOINT_URL = None
S3_REGION = None
S3_ACCESS_KEY = None
S3_SECRET_KEY = None
# How the app answers /i/ and /t/ from S3: "proxy" streams the bytes itself (same headers as
# local files), "redirect" sends a 302 to a presigned URL valid for S3_PRESIGN_EXPIRY seconds.
S3_SERVE = "proxy"
S3_PRESIGN_EXPIRY = 3600

# Public base URL for links (https://img.example.com). Empty means the request's own host,
# which is right behind a proxy only when TRUSTED_PROXIES is set.
BASE_URL = None

# How many reverse proxies in front of the app may set X-Forwarded-For/-Proto/-Host.
# 0 means the headers are ignored, so a client cannot forge its IP.
TRUSTED_PROXIES = 0

# Plans: API requests per hour (None = unlimited), bytes per file, files per bulk request
# (None = unlimited). Anonymous callers are counted per client IP.
PLANS = {
    "anonymous": {"hourly": 100, "max_file": 64 * MiB, "bulk": 10},
    "free": {"hourly": 1_000, "max_file": 64 * MiB, "bulk": 50},
    "pro": {"hourly": 10_000, "max_file": 256 * MiB, "bulk": 500},
    "enterprise": {"hourly": None, "max_file": 1024 * MiB, "bulk": None},
}

# Formats accepted, by Pillow's name; nothing else reaches a Pillow parser.
ALLOWED_FORMATS = ["JPEG", "PNG", "GIF", "WEBP", "AVIF", "BMP", "TIFF"]

# Our own decompression-bomb ceilings: Pillow only warns below twice its default.
MAX_PIXELS = 100_000_000
MAX_FRAMES = 1_000
MAX_TOTAL_PIXELS = 1_000_000_000

# Bytes of decoded pixels the uploads of one app process may hold at once (about 4 bytes a
# pixel); an upload waits up to DECODE_WAIT_SECONDS for its share, then gets 503. Bounds
# memory under a burst of small files that decode huge.
DECODE_MEMORY_LIMIT = 1024 * MiB
DECODE_WAIT_SECONDS = 30

# Remove location and personal metadata (EXIF GPS, serials, XMP, IPTC, comments, text
# chunks) from stored originals, keeping the orientation and ICC profile; pixels of JPEG,
# PNG, WebP and GIF are not re-encoded. Thumbnails never carry metadata.
STRIP_METADATA = True

# Thumbnails fit inside this square, keep their aspect ratio and are never upscaled.
THUMBNAIL_SIZE = 320
THUMBNAIL_QUALITY = 85

# Bounds on user-supplied strings and parameters.
ALBUM_MAX_LENGTH = 64
FILENAME_MAX_LENGTH = 200
MAX_EXPIRY_HOURS = 24 * 365 * 10

# Cap on parts in one multipart body when a plan allows unlimited bulk uploads, and on the
# in-memory size of non-file form fields: a flood of tiny fields is a quick 413, not a stall.
MAX_FORM_PARTS = 5_000
# (Werkzeug's multipart decoder also counts its read buffer, 64 KiB chunks, against the
# in-memory size, so it must stay well above that.)
MAX_FORM_MEMORY_SIZE = 1024 * 1024

# Flask-Limiter, always set explicitly (the limiter keeps state across apps otherwise).
# memory:// is exact for one gunicorn worker process with threads (the embedded default);
# use redis://host:6379/0 for several workers or hosts.
RATELIMIT_ENABLED = True
RATELIMIT_STORAGE_URI = "memory://"
RATELIMIT_STRATEGY = "moving-window"
# The X-RateLimit-* headers are ImgLink's own (web/limits.py), not Flask-Limiter's.
RATELIMIT_HEADERS_ENABLED = False
# Store errors become limits' StorageError (answered 503, never waved through), and a dead
# Redis is noticed within a second or two rather than hanging the request.
RATELIMIT_STORAGE_OPTIONS = {"wrap_exceptions": True, "socket_timeout": 2,
                             "socket_connect_timeout": 2}

# Origins allowed to call /api/v1/ from a browser.
CORS_ALLOW_ORIGIN = "*"
