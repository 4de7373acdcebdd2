"""Object storage for uploaded and consented photos, contributions and backups' objects
(fsspec): a local directory by default, S3 or an S3-compatible server by ``storage_url``
(``s3://bucket/prefix``, through ``s3fs``; the ``s3`` extra).

Keys are relative, slash-separated paths such as ``uploads/<key>`` or
``consented/<prediction id>``: segments of ``[A-Za-z0-9_.-]`` that do not start with a dot
(so no ``..``, no hidden files, no absolute paths). Writes are atomic: the bytes go to a
hidden temporary file next to the target, which is then renamed over it, so a reader sees the
old object or the new one, never half of one (S3 writes an object whole by itself). On S3
nothing is cached between calls (``use_listings_cache=False``): other processes write too.
On S3 a browser may also PUT an upload straight into the bucket with a presigned URL
(:meth:`ObjectStore.presign_put`, signed by botocore with the same credentials).

Layout under the data dir (``settings.data_dir.objects``)::

    objects/uploads/<key>
    objects/consented/<prediction id>
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from lookalike.config import Settings
from lookalike.errors import InvalidInput, LookalikeError, NotFound

MAX_KEY_LENGTH = 512
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
_TMP_SUFFIX = ".tmp"


def validate_key(key: str) -> str:
    """Return ``key`` when it is a safe object key; raise ``InvalidInput`` (storage.bad_key)."""
    reason = None
    if not isinstance(key, str) or not key:
        reason = "a key must be a non-empty string"
    elif len(key) > MAX_KEY_LENGTH:
        reason = f"a key must be at most {MAX_KEY_LENGTH} characters"
    elif key.startswith("/"):
        reason = "a key must be relative, not an absolute path"
    elif not all(_SEGMENT.fullmatch(segment) for segment in key.split("/")):
        reason = (
            "a key is '/'-separated segments of letters, digits, '_', '.', '-'"
            " that do not start with '.' (no '..', no empty segments)"
        )
    if reason is not None:
        raise InvalidInput(
            f"invalid object key {key!r}: {reason}", code="storage.bad_key", details={"key": key}
        )
    return key


def _validate_prefix(prefix: str) -> str:
    if prefix == "":
        return prefix
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def _remote(settings: Settings) -> tuple[AbstractFileSystem, str]:
    """The filesystem and root that ``storage_url`` names."""
    url = settings.storage_url
    scheme, _, rest = url.partition("://")
    if scheme != "s3" or not rest.strip("/"):
        raise InvalidInput(
            f"storage_url {url!r} is not understood: expected s3://bucket/prefix (or empty for"
            " the data dir's objects/ folder).",
            code="storage.bad_url",
        )
    try:
        import s3fs
    except ImportError as exc:
        raise InvalidInput(
            "storage_url names S3 but s3fs is not installed: pip install 'lookalike[s3]'.",
            code="storage.s3_missing",
        ) from exc
    client: dict[str, str] = {}
    if settings.s3_region:
        client["region_name"] = settings.s3_region
    fs = s3fs.S3FileSystem(
        endpoint_url=settings.s3_endpoint_url or None,
        key=settings.s3_access_key_id or None,
        secret=settings.s3_secret_access_key or None,
        client_kwargs=client,
        # A store that cannot be reached answers within seconds, not after minutes of
        # retries: the request that needed it gets a clean 503 (StorageUnavailable).
        config_kwargs={"connect_timeout": 3, "read_timeout": 15, "retries": {"max_attempts": 2}},
        use_listings_cache=False,
    )
    return fs, rest.strip("/")


def _presigner(settings: Settings) -> Any:
    """A botocore S3 client that signs URLs for browsers (no request is sent to sign one):
    the public endpoint when the service reaches S3 under another name."""
    from botocore.config import Config
    from botocore.session import get_session

    endpoint = settings.s3_public_endpoint_url or settings.s3_endpoint_url
    return get_session().create_client(
        "s3",
        endpoint_url=endpoint or None,
        region_name=settings.s3_region or None,
        aws_access_key_id=settings.s3_access_key_id or None,
        aws_secret_access_key=settings.s3_secret_access_key or None,
        config=Config(signature_version="s3v4"),
    )


def remote_store(settings: Settings) -> ObjectStore | None:
    """The object store model versions and reference photos are shared through when it is
    remote (``storage_url``), else None: the data dir holds the only copy."""
    return ObjectStore(settings) if settings.storage_url else None


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    content_type: str | None  # None where the store does not keep it (local files)


class StorageUnavailable(LookalikeError):
    """The object store cannot be reached or written (S3 down, a full disk): nothing was
    stored, and the caller writes no row that would name the object."""

    status = 503
    code = "storage.unavailable"


def _unavailable(action: str, key: str, exc: BaseException) -> StorageUnavailable:
    full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
    why = "the disk is full" if full else f"{type(exc).__name__}: {exc}"[:200]
    return StorageUnavailable(
        f"Could not {action} a stored file ({why});"
        f" {'nothing was kept' if action == 'write' else 'nothing was changed'}."
        " Try again in a moment.",
        details={"key": key, "reason": "disk_full" if full else "unreachable"},
    )


class ObjectStore:
    """Bytes by key in an fsspec filesystem (default: ``LocalFileSystem`` at ``home/objects``).

    ``content_type`` is accepted by :meth:`put` for parity with object stores that keep it
    (S3 and friends); the local store does not record it: callers keep it in the database.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        fs: AbstractFileSystem | None = None,
        root: str | None = None,
    ) -> None:
        self.settings = settings
        self._s3 = fs is None and bool(settings.storage_url)
        if fs is None and settings.storage_url:
            fs, root = _remote(settings)
        self.fs: AbstractFileSystem = fs if fs is not None else LocalFileSystem()
        if root is None:
            root = str(settings.data_dir.objects.resolve())
        self.root = root.rstrip("/")
        self._local = isinstance(self.fs, LocalFileSystem)
        self._signer: Any = None
        self._signer_lock = threading.Lock()
        self._origin: str | None = None

    @property
    def presigns_uploads(self) -> bool:
        """Whether uploads go straight to S3 with presigned URLs (else through the server)."""
        return self._s3 and self.settings.s3_presigned_uploads

    def presign_put(self, key: str, content_type: str, size: int, expires_in: int) -> str:
        """A presigned S3 PUT URL for ``key``: S3 refuses a request whose Content-Type or
        Content-Length differ from ``content_type`` and ``size`` (both are signed headers),
        or that comes after ``expires_in`` seconds."""
        if not self.presigns_uploads:
            raise InvalidInput(
                "this object store does not presign uploads", code="storage.no_presign"
            )
        bucket, _, path = self.path(key).partition("/")
        try:
            with self._signer_lock:
                if self._signer is None:
                    self._signer = _presigner(self.settings)
            url = self._signer.generate_presigned_url(
                "put_object",
                Params={
                    "Bucket": bucket,
                    "Key": path,
                    "ContentType": content_type,
                    "ContentLength": size,
                },
                ExpiresIn=expires_in,
                HttpMethod="PUT",
            )
        except Exception as exc:  # no credentials, a bad endpoint: nothing can be uploaded
            raise StorageUnavailable(
                f"Could not sign an upload URL ({type(exc).__name__}: {exc})"[:300]
                + "; nothing was kept. Try again in a moment.",
                details={"key": key, "reason": "cannot_sign"},
            ) from exc
        return str(url)

    def path(self, key: str) -> str:
        """The filesystem path of ``key`` (validated)."""
        return f"{self.root}/{validate_key(key)}"

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Store ``data`` under ``key`` atomically (replaces an existing object)."""
        path = self.path(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInput("object data must be bytes", code="storage.bad_data")
        if not self._local:  # an object store writes an object whole, or not at all
            try:
                self.fs.pipe_file(path, bytes(data), ContentType=content_type)
            except Exception as exc:
                raise _unavailable("write", key, exc) from exc
            return
        parent, _, name = path.rpartition("/")
        tmp = f"{parent}/.{name}.{uuid.uuid4().hex}{_TMP_SUFFIX}"
        self.fs.makedirs(parent, exist_ok=True)
        try:
            with self.fs.open(tmp, "wb") as f:
                f.write(bytes(data))
                if self._local:
                    f.flush()
                    os.fsync(f.fileno())
            if self._local:
                os.chmod(tmp, 0o644)
                os.replace(tmp, path)  # atomic on POSIX, replaces an existing object
            else:
                self.fs.mv(tmp, path)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError, OSError):
                self.fs.rm_file(tmp)
            if isinstance(exc, OSError):  # a full disk, a read-only or vanished folder
                raise _unavailable("write", key, exc) from exc
            raise

    def get(self, key: str) -> bytes:
        """The bytes of ``key``; ``NotFound`` (storage.not_found) when there is no such object."""
        path = self.path(key)
        try:
            data = self.fs.cat_file(path)
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(
                f"no object with key {key!r}", code="storage.not_found", details={"key": key}
            ) from None
        except Exception as exc:
            raise _unavailable("read", key, exc) from exc
        return bytes(data)

    def upload_origin(self) -> str | None:
        """The origin presigned upload URLs point at (a page must be allowed to connect
        there), or None when uploads are not presigned or cannot be signed now."""
        if not self.presigns_uploads:
            return None
        if self._origin is None:
            try:
                url = self.presign_put("uploads/origin", "image/jpeg", 1, 60)
            except StorageUnavailable:
                return None
            parts = urlsplit(url)
            self._origin = f"{parts.scheme}://{parts.netloc}"
        return self._origin

    def info(self, key: str) -> ObjectInfo:
        """Size and content type of ``key`` (one HEAD on S3); ``NotFound`` when missing."""
        path = self.path(key)
        try:
            found = self.fs.info(path)
        except FileNotFoundError:
            found = {}
        except Exception as exc:
            raise _unavailable("read", key, exc) from exc
        if found.get("type") != "file":
            raise NotFound(
                f"no object with key {key!r}", code="storage.not_found", details={"key": key}
            )
        content_type = found.get("ContentType")
        return ObjectInfo(int(found["size"]), str(content_type) if content_type else None)

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds an object; ``StorageUnavailable`` when the store cannot say
        (fsspec's ``isfile`` answers False for an unreachable S3, which would make a deletion
        look done)."""
        try:
            self.info(key)
        except NotFound:
            return False
        return True

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when an object was removed, False when there was none;
        ``StorageUnavailable`` when the store cannot be reached (nothing is assumed gone)."""
        path = self.path(key)
        if not self.exists(key):
            return False
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise _unavailable("delete", key, exc) from exc
        return True

    def remove_empty(self, prefix: str) -> None:
        """Remove the directory a ``prefix`` such as ``contributions/<id>/`` names once it is
        empty (local storage; object stores have no directories). Only for prefixes nothing
        writes to any more: a concurrent ``put`` under it would lose its directory."""
        _validate_prefix(prefix)
        directory = prefix.rstrip("/")
        if not self._local or not directory:
            return
        with contextlib.suppress(OSError):  # not empty, or already gone
            self.fs.rmdir(f"{self.root}/{directory}")

    def mtime(self, key: str) -> datetime:
        """When ``key`` was last written (timezone-aware UTC); ``NotFound`` when missing."""
        path = self.path(key)
        try:
            modified: datetime = self.fs.modified(path)
        except FileNotFoundError:
            raise NotFound(
                f"no object with key {key!r}", code="storage.not_found", details={"key": key}
            ) from None
        except Exception as exc:
            raise _unavailable("read", key, exc) from exc
        if modified.tzinfo is None:
            modified = modified.replace(tzinfo=UTC)
        return modified.astimezone(UTC)

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (e.g. ``"uploads/"``), sorted; temp files skipped."""
        _validate_prefix(prefix)
        # Walk only the deepest directory the prefix names, not the whole store.
        directory = prefix.rpartition("/")[0]
        base = f"{self.root}/{directory}" if directory else self.root
        try:
            found = sorted(self.fs.find(base)) if self.fs.isdir(base) else []
        except Exception as exc:  # a store that cannot be reached is not an empty one
            raise _unavailable("list", prefix, exc) from exc
        start = len(self.root) + 1
        for path in found:
            key = path[start:] if path.startswith(self.root + "/") else None
            if key is None or not key.startswith(prefix):
                continue
            if any(segment.startswith(".") for segment in key.split("/")):
                continue  # an in-flight temporary file
            yield key
