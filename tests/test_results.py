import os

import pyarrow.parquet as pq
import pytest

from raynas.results import (OutputLocked, RunConfigMismatch, acquire_lock, check_or_write_run_config,
                            clean_temporaries, load_results, part_name, scored_cells, write_part_atomic)
from raynas.rows import row_schema, rows_to_table

COLUMNS = ["space", "index", "arch", "dataset", "seed", "device", "status", "error", "intrain"]


def rows(cells):
    return [dict(space="nb201", index=c, arch=f"a{c}", dataset="cifar10", seed=0, device="cpu",
                 status="ok", error="", intrain=float(c)) for c in cells]


def test_parts_are_atomic_deterministic_and_readable(tmp_path):
    schema = row_schema(COLUMNS, {"space": "nb201"})
    assert part_name([3, 1, 2]) == part_name([3, 1, 2]) != part_name([1, 2])
    write_part_atomic(rows_to_table(rows([0, 1]), schema), tmp_path, part_name([0, 1]))
    write_part_atomic(rows_to_table(rows([0, 1]), schema), tmp_path, part_name([0, 1]))  # retry: same file
    write_part_atomic(rows_to_table(rows([5]), schema), tmp_path, part_name([5]))
    (tmp_path / ".tmp-dead-part-0000009-x.parquet").write_bytes(b"PAR1 truncated")  # a killed writer
    assert scored_cells(tmp_path) == {0, 1, 5}
    table = load_results(tmp_path)
    assert table.column("index").to_pylist() == [0, 1, 5]
    assert pq.read_schema(next(tmp_path.glob("part-*"))).metadata[b"raynas.config"] == b'{"space": "nb201"}'
    assert clean_temporaries(tmp_path) == 1


def test_nan_scores_keep_the_schema(tmp_path):
    schema = row_schema(COLUMNS)
    r = rows([7])
    r[0]["intrain"] = float("nan")
    table = rows_to_table(r, schema)
    assert table.schema.field("intrain").type == "double" and table.column("intrain").null_count == 0


def test_different_config_is_refused(tmp_path):
    check_or_write_run_config(tmp_path, {"seed": 0}, {"raynas": "x"})
    check_or_write_run_config(tmp_path, {"seed": 0}, {"raynas": "y"})  # same config: fine
    with pytest.raises(RunConfigMismatch, match="different scoring configuration"):
        check_or_write_run_config(tmp_path, {"seed": 1}, {"raynas": "x"})


def test_lock_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path):
    import json
    import socket
    import time

    lease = acquire_lock(tmp_path)
    with pytest.raises(OutputLocked, match="is being written by"):
        acquire_lock(tmp_path)
    record = json.loads((tmp_path / "_raynas.lock").read_text())
    record.update(pid=999999999, host=socket.gethostname(), heartbeat=time.time())  # a dead process here
    (tmp_path / "_raynas.lock").write_text(json.dumps(record))
    taken = acquire_lock(tmp_path)
    assert taken.id == json.loads((tmp_path / "_raynas.lock").read_text())["id"]
    assert not lease.renew() and lease.lost  # the old holder notices it lost the lease
    taken.release()
    assert not (tmp_path / "_raynas.lock").exists()


def test_local_create_if_absent_also_without_hard_links(tmp_path, monkeypatch):
    import os

    from raynas.storage import LocalStore

    store = LocalStore(tmp_path)
    assert store.create("_x.json", b"first") and not store.create("_x.json", b"second")
    assert (tmp_path / "_x.json").read_bytes() == b"first"

    def no_links(src, dst):
        raise PermissionError("hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    assert store.create("_y.json", b"first") and not store.create("_y.json", b"second")
    assert (tmp_path / "_y.json").read_bytes() == b"first"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]  # no temporaries left


def test_a_run_record_that_is_not_json_is_named_in_one_line(tmp_path):
    from raynas.results import RUN_FILE, read_run_config, scan_results

    (tmp_path / RUN_FILE).write_bytes(b"\xff\xfe not json")
    for read in (read_run_config, scan_results):
        with pytest.raises(ValueError, match=f"{RUN_FILE} is not a raynas run record"):
            read(tmp_path)
    (tmp_path / RUN_FILE).write_text('{"versions": {}}')
    with pytest.raises(ValueError, match="no 'config' in it"):
        read_run_config(tmp_path)
