"""The datasets raynas scores for: classes (or outputs), native resolution, normalisation, the
data file holding their probe images, and what a probe's target is. No torch here: the CLI
reads this at start-up.

TransNAS-Bench-101's seven tasks are datasets too, each tied to the ``tnb101_micro`` space
(its networks' decoders differ by task). There are no Taskonomy images: their probes are
synthetic, and their targets follow the task's output — random labels for a classification
(``classes``), a N(0, 1) target of the output's shape for a regression (``values``, one
vector per image) or a dense prediction (``pixels``, one map per image at the input's size).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    resolution: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    probe_need: str | None  # the raynas.datafiles need holding its labelled probe images
    target: str = "classes"  # classes | values | pixels: what a probe's target is (module doc)
    space: str | None = None  # the one space whose networks this dataset's task needs; None: any


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", 10, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                           "cifar10-probe"),
    "cifar100": DatasetInfo("cifar100", 100, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                            "cifar100-probe"),
    "imagenet16-120": DatasetInfo("imagenet16-120", 120, 16, (0.4811, 0.4575, 0.4078),
                                  (0.2481, 0.2402, 0.2553), None),
}

NO_IMAGES = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # a task without images: nothing to normalise
# TransNAS-Bench-101's tasks: outputs, and the input size its networks were trained at (256x256
# Taskonomy images; jigsaw: nine 64x64 tiles, fed here as one 192x192 image).
TNB101_TASKS: dict[str, DatasetInfo] = {info.name: info for info in (
    DatasetInfo("class_scene", 63, 256, *NO_IMAGES, None, "classes", "tnb101_micro"),
    DatasetInfo("class_object", 100, 256, *NO_IMAGES, None, "classes", "tnb101_micro"),
    DatasetInfo("jigsaw", 1000, 192, *NO_IMAGES, None, "classes", "tnb101_micro"),
    DatasetInfo("room_layout", 9, 256, *NO_IMAGES, None, "values", "tnb101_micro"),
    DatasetInfo("segmentsemantic", 17, 256, *NO_IMAGES, None, "pixels", "tnb101_micro"),
    DatasetInfo("normal", 3, 256, *NO_IMAGES, None, "pixels", "tnb101_micro"),
    DatasetInfo("autoencoder", 3, 256, *NO_IMAGES, None, "pixels", "tnb101_micro"),
)}
DATASETS.update(TNB101_TASKS)
# ImageNet-1k's shape, for the mbv2 space (its networks are the peers' ImageNet models); no images.
DATASETS["imagenet"] = DatasetInfo("imagenet", 1000, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), None,
                                   "classes", "mbv2")


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


_BY_KEY = {_key(name): name for name in DATASETS}


def dataset_info(name: str) -> DatasetInfo:
    if _key(name) not in _BY_KEY:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[_BY_KEY[_key(name)]]
