"""Probe batches: the inputs proxies see. Built once per scorer (per Ray actor), from a seed.

* synthetic: i.i.d. N(0, 1) images with uniform random labels (InTrain, Zen), or all-ones
  images (synflow); for a task whose output is not a class (TransNAS-Bench-101's
  regression and dense tasks), a N(0, 1) target of the output's shape as well;
* real: class-balanced labelled CIFAR images (GradAlign, NASWOT, snip, ...) from the probe
  file that :mod:`raynas.datafiles` resolves (the user's folder, fetched data, or the set
  shipped in the package). Which file a run drew from is part of its recorded config
  (:func:`probe_identity`). There is no ImageNet16-120 data in raynas; asking for it is an
  error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from raynas.datafiles import resolve_need
from raynas.datasets import DATASETS, DatasetInfo, dataset_info  # noqa: F401 — re-exported
from raynas.seeding import derive_seed, generator


@dataclass(frozen=True)
class ProbeBatch:
    """Inputs (N, 3, H, W) float32 and integer labels (N,), on CPU until moved; ``targets``:
    a float target of the network's output shape where the output is not a class (a loss
    is then the mean squared error against it, :func:`raynas.proxies.base.probe_loss`)."""

    inputs: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor | None = None

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "ProbeBatch":
        """On ``device``; ``dtype`` (if given) for the float tensors."""
        targets = None if self.targets is None else self.targets.to(device, dtype)
        return ProbeBatch(self.inputs.to(device, dtype), self.labels.to(device), targets)

    def __len__(self) -> int:
        return len(self.labels)


TARGET_KINDS = ("classes", "values", "pixels")


def gaussian_batch(batch_size: int, resolution: int, num_classes: int, seed: int,
                   target: str = "classes") -> ProbeBatch:
    """N(0, 1) images and uniform random labels from a private generator; for ``target``
    ``values`` / ``pixels`` (:mod:`raynas.datasets`), then a N(0, 1) target of shape
    (N, num_classes) / (N, num_classes, resolution, resolution) from the same generator
    (the images and labels are the same numbers whatever the target)."""
    if batch_size < 2:
        raise ValueError(f"probe batch_size must be >= 2, got {batch_size}")
    if target not in TARGET_KINDS:
        raise ValueError(f"unknown probe target {target!r}; known: {', '.join(TARGET_KINDS)}")
    gen = generator(derive_seed(seed, "gaussian", batch_size, resolution, num_classes))
    inputs = torch.randn(batch_size, 3, resolution, resolution, generator=gen)
    labels = torch.randint(0, num_classes, (batch_size,), generator=gen)
    if target == "classes":
        return ProbeBatch(inputs, labels)
    shape = (batch_size, num_classes) + ((resolution, resolution) if target == "pixels" else ())
    return ProbeBatch(inputs, labels, torch.randn(shape, generator=gen))


def ones_batch(batch_size: int, resolution: int) -> ProbeBatch:
    """All-ones images (synflow's input) with label 0."""
    return ProbeBatch(torch.ones(batch_size, 3, resolution, resolution), torch.zeros(batch_size, dtype=torch.long))


def _no_images(info: DatasetInfo) -> FileNotFoundError:
    return FileNotFoundError(
        f"no probe images for dataset {info.name!r}: raynas ships CIFAR-10/100 probes only; "
        f"{info.name} images are not available, so real-data proxies cannot run on it"
    )


def probe_identity(dataset: str) -> dict[str, str]:
    """Which probe file a run draws its real images from: origin and checksum (recorded in
    the run config, so runs on different probe sets never share a results directory)."""
    info = dataset_info(dataset)
    if info.probe_need is None:
        raise _no_images(info)
    found = resolve_need(info.probe_need)
    return {"dataset": info.name, "origin": found.origin, "sha256": found.sha256()}


def _load_probe_images(info: DatasetInfo, path: Path | None) -> tuple[np.ndarray, np.ndarray]:
    if info.probe_need is None:
        raise _no_images(info)
    path = path or resolve_need(info.probe_need).path
    with np.load(path) as archive:
        train = archive["split"] == "train"
        return archive["images"][train], archive["labels"][train].astype(np.int64)


def balanced_indices(labels: np.ndarray, batch_size: int, seed: int, min_per_class: int = 2) -> np.ndarray:
    """Indices of a class-balanced batch: ``min(K, batch_size // min_per_class)`` classes,
    sizes differing by at most one, every draw from a seeded permutation.

    With CIFAR-10 and 128 images that is 10 classes of 12–13; with CIFAR-100, 64 classes of
    2, so that every image has a same-class partner (GradAlign needs pairs).
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    n_classes = min(len(classes), max(1, batch_size // min_per_class))
    chosen = np.sort(rng.choice(classes, size=n_classes, replace=False))
    per_class = np.full(n_classes, batch_size // n_classes)
    per_class[rng.choice(n_classes, size=batch_size % n_classes, replace=False)] += 1
    picks = []
    for cls, count in zip(chosen, per_class):
        pool = np.flatnonzero(labels == cls)
        if len(pool) < count:
            raise ValueError(f"class {cls} has {len(pool)} probe images, {count} needed")
        picks.append(rng.permutation(pool)[:count])
    return np.concatenate(picks)


def real_batch(dataset: str, batch_size: int, seed: int, path: Path | None = None) -> ProbeBatch:
    """A class-balanced, normalised batch of real training images (no augmentation), from
    ``path`` or the resolved probe file of the dataset."""
    info = dataset_info(dataset)
    images, labels = _load_probe_images(info, path)
    idx = balanced_indices(labels, batch_size, derive_seed(seed, "real", info.name, batch_size))
    x = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    return ProbeBatch(((x - mean) / std).contiguous(), torch.from_numpy(labels[idx]))
