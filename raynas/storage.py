"""Where a results directory lives: a local (or NFS) folder, or a prefix on an object store
(``s3://bucket/prefix``, ``gs://bucket/prefix``; any other ``scheme://`` pyarrow reads is
readable).

A results directory needs four things from its storage, and each backend states how it
gives them:

* **a part appears whole or not at all** — locally a hidden temporary file renamed onto
  its name; on S3 one object written by one request (an object is visible only once its
  PUT or its multipart upload completes);
* **create-if-absent** for ``_raynas_run.json`` and the lock — locally ``link(2)`` of a
  complete temporary file (fails if the name exists); on S3 ``PUT`` with
  ``If-None-Match: *``; on GCS an upload with ``ifGenerationMatch=0``;
* **compare-and-swap** for the lock's heartbeat and takeover — on S3 ``PUT`` with
  ``If-Match: <etag>``; on GCS ``ifGenerationMatch=<generation>``; locally a lock held by a
  process on this host, checked by pid;
* **list and read** — pyarrow's filesystem layer (S3, others), google-cloud-storage (GCS).

Credentials and endpoints come from the standard chain (environment, including
``AWS_ENDPOINT_URL`` for MinIO or on-premise stores and ``STORAGE_EMULATOR_HOST`` for a GCS
emulator, config files, instance roles and workload identity); raynas neither prints nor
records them.
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from raynas.atomic import TMP_PREFIX, atomic_target


class StorageError(ValueError):
    """A results location raynas cannot use; the message names it."""


@dataclass(frozen=True)
class Entry:
    """One name directly under the results directory. ``stamp`` changes whenever the file
    is written again (size and modification time, or the object's generation), so that a
    reader can keep what it learnt from a file until then."""

    name: str
    is_dir: bool
    stamp: str = ""


def _stamp(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:  # gone since the listing: a stamp no reader has seen
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}"


class Store:
    """A results directory on some storage. Names are relative to it ("part-….parquet")."""

    uri: str

    # -- listing and reading (every backend, through pyarrow.fs) --------------------------
    def entries(self) -> list[Entry]:
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def read_bytes(self, name: str) -> bytes:
        raise NotImplementedError

    def read_text(self, name: str) -> str:
        return self.read_bytes(name).decode()

    def read_table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        raise NotImplementedError

    def open_parquet(self, name: str) -> pq.ParquetFile:
        """One Parquet file opened once: its schema and any of its columns from one handle
        (one download where a backend must download it whole)."""
        raise NotImplementedError

    # -- writing -------------------------------------------------------------------------
    def write_table(self, name: str, table: pa.Table) -> None:
        """The whole table under ``name``, visible only when complete (replaces any): on an
        object store, the Parquet file serialised in memory and written as one object."""
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        self.write_bytes(name, sink.getvalue().to_pybytes())

    def write_bytes(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    def create(self, name: str, data: bytes) -> bool:
        """Write ``name`` only if it does not exist; False if it did (nothing written)."""
        raise NotImplementedError

    def read_versioned(self, name: str) -> tuple[bytes, str] | None:
        """(content, version token) for :meth:`replace_if`, or None if absent."""
        raise NotImplementedError

    def replace_if(self, name: str, data: bytes, version: str) -> bool:
        """Replace ``name`` only if it is still at ``version``; False if it moved."""
        raise NotImplementedError

    def delete(self, name: str) -> None:
        raise NotImplementedError

    def move(self, name: str, target: str) -> None:
        raise NotImplementedError

    def ensure(self) -> None:
        """Make the location usable (create a local folder); refuse one that is not."""
        raise NotImplementedError

    def clean_temporaries(self) -> int:
        return 0

    def __str__(self) -> str:
        return self.uri


class LocalStore(Store):
    """A folder on a local or network (NFS, EFS) filesystem."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().resolve()
        self.uri = str(self.path)

    def entries(self) -> list[Entry]:
        if not self.path.is_dir():
            return []
        return [Entry(p.name, p.is_dir(), _stamp(p)) for p in sorted(self.path.iterdir())]

    def exists(self, name: str) -> bool:
        return (self.path / name).exists()

    def read_bytes(self, name: str) -> bytes:
        return (self.path / name).read_bytes()

    def read_table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.path / name, columns=columns)

    def open_parquet(self, name: str) -> pq.ParquetFile:
        return pq.ParquetFile(self.path / name)

    def write_table(self, name: str, table: pa.Table) -> None:
        with atomic_target(self.path / name) as tmp:
            pq.write_table(table, tmp)

    def write_bytes(self, name: str, data: bytes) -> None:
        with atomic_target(self.path / name) as tmp:
            tmp.write_bytes(data)

    def create(self, name: str, data: bytes) -> bool:
        tmp = self.path / f"{TMP_PREFIX}{uuid.uuid4().hex}-{name}"
        try:
            tmp.write_bytes(data)
            os.link(tmp, self.path / name)  # atomic, complete, and refused if the name exists
            return True
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links: exclusive create, then the content
            try:
                fd = os.open(self.path / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def read_versioned(self, name: str) -> tuple[bytes, str] | None:
        path = self.path / name
        try:
            stat = path.stat()
            return path.read_bytes(), f"{stat.st_mtime_ns}:{stat.st_size}"
        except FileNotFoundError:
            return None

    def replace_if(self, name: str, data: bytes, version: str) -> bool:
        # Not atomic across hosts; the local lock relies on pids instead (results.acquire_lock).
        current = self.read_versioned(name)
        if current is None or current[1] != version:
            return False
        self.write_bytes(name, data)
        return True

    def delete(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)

    def move(self, name: str, target: str) -> None:
        (self.path / target).parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path / name, self.path / target)

    def ensure(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise StorageError(f"--out {self.path} is a file, not a directory")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"--out {self.path}: cannot create it ({exc.strerror})") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise StorageError(f"--out {self.path}: not writable")

    def clean_temporaries(self) -> int:
        stale = list(self.path.glob(f"{TMP_PREFIX}*"))
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)


class ObjectStore(Store):
    """A prefix on an object store, through ``pyarrow.fs``; S3 adds conditional writes."""

    def __init__(self, uri: str, fs: pafs.FileSystem, base: str):
        self.uri, self.fs, self.base = uri.rstrip("/"), fs, base.rstrip("/")

    def _key(self, name: str) -> str:
        return posixpath.join(self.base, name)

    def entries(self) -> list[Entry]:
        selector = pafs.FileSelector(self.base, allow_not_found=True, recursive=False)
        return sorted((Entry(PurePosixPath(info.path).name, info.type == pafs.FileType.Directory,
                             f"{info.size}:{info.mtime_ns}")
                       for info in self.fs.get_file_info(selector)), key=lambda e: e.name)

    def exists(self, name: str) -> bool:
        return self.fs.get_file_info(self._key(name)).type != pafs.FileType.NotFound

    def read_bytes(self, name: str) -> bytes:
        with self.fs.open_input_stream(self._key(name)) as stream:
            return stream.read()

    def read_table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self._key(name), filesystem=self.fs, columns=columns)

    def open_parquet(self, name: str) -> pq.ParquetFile:
        return pq.ParquetFile(self.fs.open_input_file(self._key(name)))

    def write_bytes(self, name: str, data: bytes) -> None:
        # One object, written by one upload: invisible to readers until it completes.
        with self.fs.open_output_stream(self._key(name)) as stream:
            stream.write(data)

    def delete(self, name: str) -> None:
        try:
            self.fs.delete_file(self._key(name))
        except FileNotFoundError:
            pass

    def move(self, name: str, target: str) -> None:
        self.fs.move(self._key(name), self._key(target))  # copy, then delete, on S3

    def ensure(self) -> None:
        try:
            self.fs.get_file_info(pafs.FileSelector(self.base, allow_not_found=True, recursive=False))
        except OSError as exc:
            raise StorageError(f"--out {self.uri}: cannot list it ({str(exc).splitlines()[0]})") from None

    def create(self, name: str, data: bytes) -> bool:
        raise StorageError(f"{self.uri}: this store has no create-if-absent raynas can use; "
                           "write results to s3:// (or an S3-compatible endpoint), gs:// or a shared folder")

    def read_versioned(self, name: str) -> tuple[bytes, str] | None:
        raise StorageError(f"{self.uri}: this store has no compare-and-swap raynas can use")

    def replace_if(self, name: str, data: bytes, version: str) -> bool:
        raise StorageError(f"{self.uri}: this store has no compare-and-swap raynas can use")


class S3Store(ObjectStore):
    """S3 and S3-compatible stores (MinIO, Ceph, moto): conditional writes through boto3."""

    def __init__(self, uri: str, fs: pafs.FileSystem, base: str):
        super().__init__(uri, fs, base)
        self.bucket, _, self.prefix = base.partition("/")
        self._client = None

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
            except ImportError:
                raise StorageError("writing results to s3:// needs boto3 for its conditional writes: "
                                   "pip install 'raynas[s3]'") from None
            self._client = boto3.client("s3")  # the standard chain: env (AWS_ENDPOINT_URL too), files, role
        return self._client

    def _object_key(self, name: str) -> str:
        return posixpath.join(self.prefix, name) if self.prefix else name

    def _put(self, name: str, data: bytes, **condition: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._object_key(name), Body=data, **condition)
            return True
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or \
                    exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412):
                return False
            raise

    def create(self, name: str, data: bytes) -> bool:
        return self._put(name, data, IfNoneMatch="*")

    def read_versioned(self, name: str) -> tuple[bytes, str] | None:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(name))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return response["Body"].read(), response["ETag"]

    def replace_if(self, name: str, data: bytes, version: str) -> bool:
        return self._put(name, data, IfMatch=version)


class GCSStore(Store):
    """Google Cloud Storage, every operation through google-cloud-storage: pyarrow's GCS
    layer has no generation preconditions, and one client for everything keeps one
    credential chain. An object is visible only once its upload completes."""

    def __init__(self, uri: str, bucket: str, prefix: str):
        self.uri, self.bucket_name, self.prefix = uri.rstrip("/"), bucket, prefix.strip("/")
        self._bucket = None

    @property
    def bucket(self) -> Any:
        if self._bucket is None:
            try:
                from google.cloud import storage
            except ImportError:
                raise StorageError("results on gs:// need google-cloud-storage: pip install 'raynas[gcs]'") from None
            # The standard chain: GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC, the metadata
            # server (workload identity); STORAGE_EMULATOR_HOST for an emulator.
            self._bucket = storage.Client().bucket(self.bucket_name)
        return self._bucket

    def _key(self, name: str) -> str:
        return posixpath.join(self.prefix, name) if self.prefix else name

    def _blob(self, name: str) -> Any:
        return self.bucket.blob(self._key(name))

    def entries(self) -> list[Entry]:
        listing = self.bucket.client.list_blobs(self.bucket_name, prefix=self._key(""), delimiter="/")
        files = [Entry(PurePosixPath(blob.name).name, False, f"{blob.size}:{blob.generation}")  # pages first, then prefixes
                 for blob in listing]
        folders = [Entry(PurePosixPath(p).name, True) for p in listing.prefixes]
        return sorted(files + folders, key=lambda e: e.name)

    def exists(self, name: str) -> bool:
        return self._blob(name).exists()

    def read_bytes(self, name: str) -> bytes:
        from google.api_core.exceptions import NotFound

        try:
            return self._blob(name).download_as_bytes()
        except NotFound:
            raise FileNotFoundError(f"{self.uri}/{name}") from None

    def read_table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(pa.BufferReader(self.read_bytes(name)), columns=columns)

    def open_parquet(self, name: str) -> pq.ParquetFile:
        return pq.ParquetFile(pa.BufferReader(self.read_bytes(name)))  # GCS: one download for all of it

    def write_bytes(self, name: str, data: bytes) -> None:
        self._blob(name).upload_from_string(data)

    def _upload_if(self, name: str, data: bytes, generation: int) -> bool:
        from google.api_core.exceptions import PreconditionFailed

        try:
            self._blob(name).upload_from_string(data, if_generation_match=generation)
            return True
        except PreconditionFailed:
            return False

    def create(self, name: str, data: bytes) -> bool:
        return self._upload_if(name, data, 0)  # generation 0: only if no live object has the name

    def read_versioned(self, name: str) -> tuple[bytes, str] | None:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        while True:
            blob = self.bucket.get_blob(self._key(name))
            if blob is None:
                return None
            generation = blob.generation  # a download may overwrite the blob's fields
            try:  # the content of exactly that generation
                return blob.download_as_bytes(if_generation_match=generation), str(generation)
            except (NotFound, PreconditionFailed):
                continue  # replaced or deleted between the two requests: read again

    def replace_if(self, name: str, data: bytes, version: str) -> bool:
        return self._upload_if(name, data, int(version))

    def delete(self, name: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self._blob(name).delete()
        except NotFound:
            pass

    def move(self, name: str, target: str) -> None:
        self.bucket.copy_blob(self._blob(name), self.bucket, self._key(target))
        self.delete(name)

    def ensure(self) -> None:
        from google.api_core.exceptions import GoogleAPIError
        from google.auth.exceptions import GoogleAuthError

        try:
            next(iter(self.bucket.client.list_blobs(self.bucket_name, prefix=self._key(""), max_results=1)), None)
        except (GoogleAPIError, GoogleAuthError) as exc:
            raise StorageError(f"--out {self.uri}: cannot list it ({str(exc).splitlines()[0]})") from None


def s3_filesystem() -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem on the standard credential chain, with the endpoint of
    ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` when one is set (MinIO, on-premise)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    options: dict[str, Any] = {"region": region} if region else {}
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme)
    return pafs.S3FileSystem(**options)


def open_store(out: str | Path | Store) -> Store:
    """The store for ``--out``: ``s3://bucket/prefix``, ``gs://bucket/prefix``, ``file://...``
    or a local path; other ``scheme://`` locations that pyarrow reads (hdfs://) can be read,
    not written."""
    if isinstance(out, Store):
        return out
    text = str(out)
    if "://" not in text:
        return LocalStore(text)
    scheme = text.split("://", 1)[0].lower()
    if scheme == "file":
        return LocalStore(urlparse(text).path)
    if scheme in ("s3", "s3a"):
        base = text.split("://", 1)[1].strip("/")
        if not base:
            raise StorageError(f"--out {text}: name a bucket (s3://bucket/prefix)")
        return S3Store(f"s3://{base}", s3_filesystem(), base)
    if scheme in ("gs", "gcs"):
        bucket, _, prefix = text.split("://", 1)[1].strip("/").partition("/")
        if not bucket:
            raise StorageError(f"--out {text}: name a bucket (gs://bucket/prefix)")
        return GCSStore(f"gs://{bucket}/{prefix}".rstrip("/"), bucket, prefix)
    try:
        fs, base = pafs.FileSystem.from_uri(text)
    except (pa.ArrowInvalid, OSError) as exc:
        raise StorageError(f"--out {text}: pyarrow cannot open it ({str(exc).splitlines()[0]})") from None
    return ObjectStore(text, fs, base)


def dumps(record: dict[str, Any]) -> bytes:
    return json.dumps(record, indent=2, sort_keys=True).encode()
