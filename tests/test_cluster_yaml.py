"""cluster.yaml is a real autoscaler config: it validates against the schema shipped in the
Ray wheel, has the node types the jobs need, and installs the same package everywhere."""

import json
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_validates_against_rays_schema(config):
    jsonschema = pytest.importorskip("jsonschema")
    import ray

    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    broken = {**config, "max_wokers": 3}
    with pytest.raises(jsonschema.ValidationError, match="max_wokers"):
        jsonschema.validate(broken, schema)


def test_cpu_head_and_autoscaling_gpu_workers(config):
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    gpu_types = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    assert gpu_types and all(t["min_workers"] == 0 and t["max_workers"] >= 1 for t in gpu_types)
    assert config["idle_timeout_minutes"] > 0


def test_setup_installs_this_package_with_the_pinned_ray(config):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    mount = next(remote for remote, local in config["file_mounts"].items() if local == ".")
    assert any(f"pip install" in c and mount in c for c in config["setup_commands"])
    ray_pin = next(d for d in project["dependencies"] if d.startswith("ray"))
    assert config["docker"]["image"].startswith(f"rayproject/ray:{ray_pin.split('==')[1]}-")


def test_passes_rays_own_cross_field_checks(config):
    # Private API of the pinned Ray (2.60): merges the provider defaults, then checks e.g.
    # that the head type exists and worker bounds add up. Needs no cloud access.
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(config)
    validate_config(prepared)
    assert set(prepared["available_node_types"]) == {"ray.head.cpu", "ray.worker.gpu"}
