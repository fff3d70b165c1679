"""The datasets raynas scores for: classes, native resolution, normalisation, and the data
file holding their probe images. No torch here: the CLI reads this at start-up."""

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


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", 10, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                           "cifar10-probe"),
    "cifar100": DatasetInfo("cifar100", 100, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                            "cifar100-probe"),
    "imagenet16-120": DatasetInfo("imagenet16-120", 120, 16, (0.4811, 0.4575, 0.4078),
                                  (0.2481, 0.2402, 0.2553), None),
}


def dataset_info(name: str) -> DatasetInfo:
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[key]
