"""What a user gets from ``pip install raynas`` (a wheel, not this checkout): the shipped
whole-space score tables load (issue 23, item 8), and so do the cost table and every space's
ground truth."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel of this checkout, unpacked where no checkout is next to it."""
    out = tmp_path_factory.mktemp("wheel")
    # With build isolation (pip fetches the build backend, as for any user), else the
    # environment's own setuptools.
    for isolation in ([], ["--no-build-isolation"]):
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q",
                                "-w", str(out), str(ROOT)], capture_output=True, text=True)
        if not built.returncode:
            break
    if built.returncode:
        pytest.skip(f"cannot build a wheel here: {built.stderr.strip().splitlines()[-1:]}")
    (wheel,) = out.glob("raynas-*.whl")
    site = out / "site"
    zipfile.ZipFile(wheel).extractall(site)
    return site


def test_load_scores_from_a_wheel(installed):
    code = ("import raynas, pathlib; t = raynas.load_scores('nb201', 'cifar10'); "
            "print(t.num_rows, pathlib.Path(raynas.__file__).parent)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=installed,
                          env={"PYTHONPATH": str(installed), "PATH": ""})
    assert done.returncode == 0, done.stderr
    rows, where = done.stdout.split()
    assert rows == "15625" and Path(where).parent == installed  # the wheel's copy, not the checkout


def test_a_wheel_carries_the_cost_table_and_every_space_s_ground_truth(installed):
    # The NB101 cell table is not data the wheel carries but the space's enumeration (3
    # minutes), which every user's first NB101 run writes to the cache: this session's copy
    # serves, in a cache that holds nothing else (no data/ to shadow the wheel's files).
    from raynas.datafiles import cache_dir
    from raynas.spaces.nb101 import CACHE_NAME, cell_table

    cell_table()
    cache = installed / "cache"
    cache.mkdir(exist_ok=True)
    shutil.copyfile(cache_dir() / CACHE_NAME, cache / CACHE_NAME)
    code = ("import raynas.cost as c, raynas.spec as s, raynas.spaces as sp; "
            "print(c.cell_cost(s.ScoringSpec.resolve('nb101', 'intrain')).seconds > 0, "
            "*(sp.get_space(n).ground_truth().table.num_rows for n in ('nb201', 'nb101', 'nb_macro', 'darts', 'tnb101_micro')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=installed,
                          env={"PYTHONPATH": str(installed), "PATH": "", "RAYNAS_CACHE_DIR": str(cache)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "15625", "5000", "6561", "725", "4096"]
