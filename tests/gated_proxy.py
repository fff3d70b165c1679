"""A proxy that holds every cell until a gate file exists: a test keeps a run going for
exactly as long as it needs (tests/test_multinode.py: until a node that joined has a
scoring actor), not for as long as the machine happens to take. The gate's path comes from
the environment (``RAYNAS_TEST_GATE``), which a test hands its workers in a runtime env."""

import os
import time
from dataclasses import dataclass
from pathlib import Path

from raynas.proxies.base import ProbeSpec, ProxyDef
from raynas.proxies.params import count_parameters

GATE_ENV = "RAYNAS_TEST_GATE"
GIVE_UP_S = 600.0  # a gate that never opens fails the cell (an error row), it does not hang the run


@dataclass(frozen=True)
class Options:
    pass


def compute(model, batch, options, ctx):
    gate = Path(os.environ[GATE_ENV])
    give_up = time.monotonic() + GIVE_UP_S
    while not gate.exists():
        if time.monotonic() > give_up:
            raise TimeoutError(f"the gate {gate} did not open in {GIVE_UP_S:.0f} s")
        time.sleep(0.05)
    return {"gated_params": float(count_parameters(model))}


PROXY = ProxyDef(
    name="gated_params",
    compute=compute,
    options_cls=Options,
    components=("gated_params",),
    headline="gated_params",
    probe=lambda o: ProbeSpec("none"),
    description="the parameter count, once the test's gate file exists",
)
