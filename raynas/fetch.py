"""``raynas data fetch``: the full CIFAR training sets as probe files in raynas' cache.

The official archive is downloaded (or taken from a local copy with ``--from``), checked
against its published MD5, converted to the probe format (``images`` (N, 32, 32, 3) uint8,
``labels`` int16, ``split``) and written atomically. A corrupt or truncated download is
refused and nothing of it stays behind. The base URL can be changed with ``--base-url`` or
``RAYNAS_CIFAR_URL`` (a mirror, or a test server).
"""

from __future__ import annotations

import http.client
import os
import pickle
import tarfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raynas.atomic import TMP_PREFIX, atomic_target
from raynas.datafiles import NEEDS, fetched_dir, file_digest

URL_ENV_VAR = "RAYNAS_CIFAR_URL"
DEFAULT_BASE_URL = "https://www.cs.toronto.edu/~kriz/"


@dataclass(frozen=True)
class CifarArchive:
    dataset: str
    filename: str
    md5: str  # published with the dataset (and checked by torchvision the same way)
    folder: str  # the folder inside the archive
    train_files: tuple[str, ...]
    label_key: bytes

    @property
    def probe_relative(self) -> str:
        return NEEDS[f"{self.dataset}-probe"].relatives[0]


ARCHIVES = {a.dataset: a for a in (
    CifarArchive("cifar10", "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py",
                 tuple(f"data_batch_{i}" for i in range(1, 6)), b"labels"),
    CifarArchive("cifar100", "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python",
                 ("train",), b"fine_labels"),
)}


class CorruptDownload(ValueError):
    """The archive is not the official one (checksum) or is incomplete."""


def archive_for(dataset: str) -> CifarArchive:
    if dataset not in ARCHIVES:
        raise ValueError(f"cannot fetch {dataset!r}: raynas fetches {', '.join(ARCHIVES)}")
    return ARCHIVES[dataset]


def fetch(dataset: str, source: str | Path | None = None, base_url: str | None = None,
          progress: bool = True) -> Path:
    """Download (or read ``source``: the official archive or its extracted folder) and write
    the probe file of ``dataset`` into the cache; returns its path."""
    archive = archive_for(dataset)
    target = fetched_dir() / archive.probe_relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if source is not None and Path(source).is_dir():
        images, labels = _read_folder(archive, Path(source))
    else:
        download = None
        if source is None:
            download = target.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{archive.filename}")
            path = _download(_url(archive, base_url), download, progress)
        else:
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"--from {source}: no such file or folder")
        try:
            _check_md5(archive, path)
            images, labels = _read_archive(archive, path)
        finally:
            if download is not None:
                download.unlink(missing_ok=True)
    _write_probe_atomic(target, images, labels)
    return target


def _url(archive: CifarArchive, base_url: str | None) -> str:
    base = base_url or os.environ.get(URL_ENV_VAR) or DEFAULT_BASE_URL
    return base.rstrip("/") + "/" + archive.filename


def _download(url: str, dest: Path, progress: bool) -> Path:
    from tqdm import tqdm

    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"fetch {url}", disable=not progress) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    f.write(block)
                    bar.update(len(block))
        if total is not None and dest.stat().st_size != total:
            raise http.client.IncompleteRead(b"", total - dest.stat().st_size)
    except http.client.IncompleteRead:
        dest.unlink(missing_ok=True)
        raise CorruptDownload(f"{url}: the download ended early; nothing was written") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        dest.unlink(missing_ok=True)
        raise RuntimeError(f"cannot download {url}: {exc}") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return dest


def _check_md5(archive: CifarArchive, path: Path) -> None:
    md5 = file_digest(path, "md5")
    if md5 != archive.md5:
        raise CorruptDownload(
            f"{archive.filename}: MD5 {md5} is not the published {archive.md5}; "
            "the file is corrupt or not the official archive, and nothing was written")


def _batches_in_archive(archive: CifarArchive, path: Path) -> Iterator[dict]:
    try:
        with tarfile.open(path, "r:gz") as tar:
            for name in archive.train_files:
                member = tar.extractfile(f"{archive.folder}/{name}")
                if member is None:
                    raise CorruptDownload(f"{path}: {archive.folder}/{name} is not a file")
                yield pickle.load(member, encoding="bytes")  # the official format; checksum checked first
    except (tarfile.TarError, KeyError, EOFError) as exc:
        raise CorruptDownload(f"{path}: not a readable {archive.filename} ({exc})") from None


def _read_archive(archive: CifarArchive, path: Path) -> tuple[np.ndarray, np.ndarray]:
    return _stack(archive, _batches_in_archive(archive, path))


def _read_folder(archive: CifarArchive, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """An extracted archive: ``folder`` is the archive's folder or the one holding it."""
    if (folder / archive.folder).is_dir():
        folder = folder / archive.folder
    missing = [name for name in archive.train_files if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"--from {folder}: no {', '.join(missing)} (an extracted {archive.filename})")

    def batches() -> Iterator[dict]:
        for name in archive.train_files:
            with open(folder / name, "rb") as f:
                yield pickle.load(f, encoding="bytes")

    return _stack(archive, batches())


def _stack(archive: CifarArchive, batches: Iterator[dict]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for batch in batches:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[archive.label_key], dtype=np.int16))
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)


def _write_probe_atomic(target: Path, images: np.ndarray, labels: np.ndarray) -> None:
    with atomic_target(target) as tmp, open(tmp, "wb") as f:
        np.savez(f, images=images, labels=labels, split=np.full(len(labels), "train"))
