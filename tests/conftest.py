import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# The project's benchmark exports (peers' scores, the larger probe files) are read through
# RAYNAS_DATA_DIR, set here explicitly where they exist: raynas itself never looks for them.
# Tests of the shipped (embedded) data unset it with the `embedded_only` fixture.
if "RAYNAS_DATA_DIR" not in os.environ and SHARED.is_dir():
    os.environ["RAYNAS_DATA_DIR"] = str(SHARED)


@pytest.fixture(scope="session")
def _ray_for_the_session():
    """Shuts down, at the end, the Ray that :func:`local_ray` started."""
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def local_ray(_ray_for_the_session):
    """One local Ray for every test that can share it (started by the first, kept for the
    rest; starting one costs seconds on a loaded machine). A test that needs a Ray of its
    own (a runtime env, a multi-node cluster) shuts this one down first
    (:func:`own_ray`)."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=3, include_dashboard=False, log_to_driver=False)


def own_ray() -> None:
    """Before a test starts a Ray of its own: none may be running in this process."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = Path(os.environ.get("RAYNAS_DATA_DIR", SHARED))
    if not (root / "nb201" / "ground_truth.parquet").is_file():
        pytest.skip(f"needs the project's benchmark exports, not shipped with raynas (none at {root}; set "
                    "RAYNAS_DATA_DIR): peers' scores, reference scores and the full probe files they were "
                    "computed with; tests/README.md lists what these tests cover")
    return root


@pytest.fixture
def embedded_only(monkeypatch, tmp_path) -> Path:
    """No RAYNAS_DATA_DIR and an empty cache: what a fresh machine sees. Returns the cache."""
    monkeypatch.delenv("RAYNAS_DATA_DIR", raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("RAYNAS_CACHE_DIR", str(cache))
    return cache
