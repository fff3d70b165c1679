"""The NB101 enumeration's workers run no user code (issue 23, item 5): a script without an
``if __name__ == "__main__"`` guard that triggers the build runs its top level once."""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.e2e


def test_an_unguarded_script_runs_once_and_finishes(tmp_path):
    marker = tmp_path / "ran.txt"
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""
        from raynas.spaces.nb101_graph import run_slices
        with open({str(marker)!r}, "a") as f:
            f.write("ran\\n")
        cells = run_slices([(2, 0, 1), (3, 0, 1), (4, 0, 2), (4, 1, 2)], processes=2, progress=False)
        print(len(cells))
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "ran\n"  # the top level ran once, not once per worker
    # 2 vertices: the input-output edge alone; 3 vertices: a chain with one of 3 ops, or with
    # the skip edge too: 1 + 3 + 3 cells; 4 vertices add more.
    assert int(done.stdout.strip()) > 7


def test_a_failing_worker_names_its_slice():
    import pytest

    from raynas.spaces.nb101_graph import run_slices

    with pytest.raises(RuntimeError, match=r"slice \(2, 0, 0\) failed: ZeroDivisionError"):
        run_slices([(2, 0, 0)], progress=False)  # 0 parts: k % 0 in the worker
