"""One scoring spec, resolved once: the space, dataset, seed and each proxy with its options,
label and origin. The driver resolves a request into a spec and records its config in
``_raynas_run.json``; the actors rebuild the spec from that recorded config (never from the
request strings), so what the run file says is exactly what was computed. The Python API,
the CLI and the jobs pass the same object around.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from raynas.datasets import DatasetInfo, dataset_info
from raynas.proxies.base import ConfiguredProxy
from raynas.proxies.registry import parse_proxies, proxy_from_config
from raynas.precision import DEFAULT_PRECISION, check_precision
from raynas.spaces import SearchSpace, find_space, space_from_config


@dataclass(frozen=True)
class ScoringSpec:
    space: SearchSpace
    proxies: tuple[ConfiguredProxy, ...]
    dataset: DatasetInfo
    seed: int
    space_source: dict[str, Any] | None = None  # import path, package, version of a plugin space
    precision: str = DEFAULT_PRECISION  # of networks and probes (raynas.precision)

    def __post_init__(self) -> None:
        check_precision(self.precision)
        object.__setattr__(self, "space", bind_dataset(self.space, self.dataset))
        for cp in self.proxies:
            if cp.proxy.class_outputs and self.dataset.target != "classes":
                raise ValueError(f"proxy {cp.label!r} reads class probabilities, and {self.dataset.name}'s outputs are "
                                 f"not classes ({self.dataset.target}); it cannot score this task")

    @classmethod
    def resolve(cls, space: str | SearchSpace, proxies: str | Sequence[str | ConfiguredProxy],
                dataset: str = "cifar10", seed: int = 0, precision: str = DEFAULT_PRECISION) -> ScoringSpec:
        """From a request (names, import paths, 'label=name:opt=v' strings); every error
        names the part of the request it is about."""
        check_precision(precision)  # before the proxies are resolved (they may load files)
        space_obj, source = find_space(space)
        return cls(space_obj, tuple(parse_proxies(proxies)), dataset_info(dataset), int(seed), source, precision)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ScoringSpec:
        """The spec a run recorded (:meth:`config`); a record without ``precision`` is float32."""
        return cls(space_from_config(config), tuple(proxy_from_config(p) for p in config["proxies"]),
                   dataset_info(config["dataset"]), int(config["seed"]), config.get("space_source"),
                   config.get("precision", DEFAULT_PRECISION))

    @property
    def dtype(self) -> "torch.dtype":
        import torch

        return getattr(torch, self.precision)

    def config(self) -> dict[str, Any]:
        """What determines every score of a run: recorded with it, compared on resume.

        Runs with real-data proxies also record which probe file they draw from
        (``probe_data``: origin and checksum), so that scores from the shipped probe set and
        from the full dataset never mix in one directory. Plugins record where they come
        from (import path, package, version).
        """
        config: dict[str, Any] = {
            "space": self.space.name,
            "dataset": self.dataset.name,
            "seed": self.seed,
            "proxies": [cp.config_dict() for cp in self.proxies],
        }
        if self.space_source is not None:
            config["space_source"] = dict(self.space_source)
        if self.precision != DEFAULT_PRECISION:  # recorded only where it is not what runs always had
            config["precision"] = self.precision
        if any(cp.needs_real_data for cp in self.proxies):
            from raynas.probes import probe_identity

            config["probe_data"] = probe_identity(self.dataset.name)
        return config

    def column_roles(self) -> dict[str, dict[str, str]]:
        """Every proxy column's role (score or diagnostic) and direction, for the run file."""
        return {column: role for cp in self.proxies for column, role in cp.column_roles().items()}


def bind_dataset(space: SearchSpace, dataset: DatasetInfo) -> SearchSpace:
    """The space that builds networks for ``dataset``: a space whose networks differ by task
    (``datasets`` and ``for_dataset``, TransNAS-Bench-101) is bound to the task here, once;
    any other space is returned as it is. A ValueError names a dataset and space that do not
    go together."""
    tasks = getattr(space, "datasets", None)
    if dataset.space is not None and dataset.space != space.name:
        raise ValueError(f"dataset {dataset.name!r} is a task of the {dataset.space} space, not of {space.name}")
    if tasks is None:
        return space
    if dataset.name not in tasks:
        raise ValueError(f"space {space.name} scores its own tasks ({', '.join(tasks)}), not dataset "
                         f"{dataset.name!r}: pass one as the dataset")
    return space.for_dataset(dataset.name) if hasattr(space, "for_dataset") else space


def default_dataset(space: str | SearchSpace) -> str:
    """The dataset a request without one scores on: CIFAR-10, or the first of the space's own
    tasks where it has them (TransNAS-Bench-101, mbv2)."""
    tasks = getattr(find_space(space)[0], "datasets", None)
    return tasks[0] if tasks else "cifar10"
