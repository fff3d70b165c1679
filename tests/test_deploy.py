"""The deployment files a user applies: deploy/kuberay-rayjob.yaml (a KubeRay RayJob) and
cluster.yaml's S3 setup. No copy of the KubeRay CRD's schema is reachable through the
package registries here, so the RayJob is checked against the fields that CRD (ray.io/v1)
requires and the ones raynas depends on."""

import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rayjob() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "kuberay-rayjob.yaml").read_text())


def ray_pin() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return next(d for d in project["dependencies"] if d.startswith("ray")).split("==")[1]


def containers(template: dict) -> list[dict]:
    return template["spec"]["containers"]


def test_rayjob_has_what_the_kuberay_crd_requires(rayjob):
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    assert rayjob["metadata"]["name"]
    cluster = rayjob["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict) and containers(head["template"])
    for group in cluster["workerGroupSpecs"]:
        assert group["groupName"] and isinstance(group["rayStartParams"], dict) and containers(group["template"])
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    for template in [head["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]:
        for container in containers(template):
            assert container["name"] and container["image"]
            requests, limits = container["resources"]["requests"], container["resources"]["limits"]
            assert set(requests) == set(limits)
    assert rayjob["spec"]["submissionMode"] in ("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode")


def test_rayjob_scores_to_s3_on_gpu_workers_that_scale_from_zero(rayjob):
    spec = rayjob["spec"]
    args = shlex.split(spec["entrypoint"])
    assert args[:2] == ["python", "jobs/score_nb201.py"] and (ROOT / args[1]).is_file()
    out = args[args.index("--out") + 1]
    assert out.startswith("s3://") and "--device" in args and args[args.index("--device") + 1] == "cuda"
    from raynas.cli import build_parser

    build_parser().parse_args(["score", "nb201", *args[2:]])  # the job's options are raynas' own
    cluster = spec["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is True and cluster["rayVersion"] == ray_pin()
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert containers(cluster["headGroupSpec"]["template"])[0]["image"] == f"rayproject/ray:{ray_pin()}-py311"
    gpu = cluster["workerGroupSpecs"][0]
    assert gpu["minReplicas"] == 0 and gpu["maxReplicas"] >= 1
    worker = containers(gpu["template"])[0]
    assert worker["image"] == f"rayproject/ray:{ray_pin()}-py311-gpu"
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert spec["backoffLimit"] >= 1 and spec["shutdownAfterJobFinishes"] is True  # a retried driver resumes


def test_rayjob_runtime_env_brings_the_code_and_the_pins(rayjob):
    env = yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])
    assert env["working_dir"].endswith(".zip")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_pin = next(d for d in project["dependencies"] if d.startswith("torch"))
    assert torch_pin in env["pip"] and any(p.startswith("boto3") for p in env["pip"])


def test_cluster_yaml_writes_to_s3_without_a_shared_disk():
    text = (ROOT / "cluster.yaml").read_text()
    config = yaml.safe_load(text)
    assert "s3://" in text and "/mnt/shared" not in text
    assert not any("-v " in option for option in config["docker"]["run_options"])  # no NFS mount
    assert any("[s3]" in command for command in config["setup_commands"])
    for node_type in config["available_node_types"].values():
        assert node_type["node_config"]["IamInstanceProfile"]["Arn"].startswith("arn:aws:iam::")
