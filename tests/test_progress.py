"""The driver's progress line (issue 10, item 6): cells counted as they are scored, not per
shard; committed cells, rate and ETA; a retried shard counted once."""

import io

from raynas.distributed.progress import Progress, ProgressBoard


def test_board_counts_a_retried_shard_once():
    board = ProgressBoard()
    board.report("part-a", 3, 1)
    board.report("part-b", 2, 0)
    board.report("part-a", 1, 0)  # part-a's actor crashed; its retry is at cell 1
    board.report("part-a", 4, 0)
    assert board.totals() == (6, 0, 0)
    board.committed("part-b")
    board.committed("part-b")  # a retried shard's part, written again under its name
    assert board.totals() == (6, 0, 2)


def test_progress_line_counts_cells_in_flight_and_committed():
    stream = io.StringIO()
    progress = Progress(total=10, already_done=5, interval_s=0.0, stream=stream)
    progress.live(3, 1)
    progress.commit(4, 1)  # the first shard's part: 4 cells, one error row
    progress.live(2, 0)  # a stale board reading never moves the count back (nor prints: nothing new)
    assert progress.scored == 4
    progress.commit(6, 0)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[raynas] 3/10 cells (30.0%), 0 committed (+5 from earlier runs), ")
    assert lines[0].endswith("error rows 1")
    assert lines[1].startswith("[raynas] 4/10 cells (40.0%), 4 committed")
    assert lines[2].startswith("[raynas] 10/10 cells (100.0%), 10 committed") and "ETA 0:00:00" in lines[2]
    assert len(lines) == 3
    assert progress.committed_errors == 1


def test_committed_counts_parts_on_disk_before_the_driver_sees_them():
    # Ray Data can hold a finished shard's summary back; the actors tell the board first
    # (issue 23, item 6: "0 committed" while 8 cells were on disk).
    stream = io.StringIO()
    progress = Progress(total=8, interval_s=0.0, stream=stream)
    progress.live(8, 0, 8)
    assert stream.getvalue().splitlines()[-1].startswith("[raynas] 8/8 cells (100.0%), 8 committed")
    progress.commit(8)  # the summaries arrive: nothing counted twice
    assert progress.committed == 8 and stream.getvalue().splitlines()[-1].startswith("[raynas] 8/8 cells (100.0%), 8 committed")


def test_progress_prints_at_its_interval_only():
    stream = io.StringIO()
    progress = Progress(total=100, interval_s=3600.0, stream=stream)
    for n in range(1, 50):
        progress.live(n, 0)
    assert stream.getvalue() == ""
    progress.commit(100)  # the last cells always print
    assert stream.getvalue().startswith("[raynas] 100/100 cells")


def test_stderr_filter_drops_only_the_matching_lines(capfd):
    import os
    import re

    from raynas.distributed.quiet import HARMLESS_ACTOR_ARGS_WARNING, dropping_stderr_lines

    harmless = (b"[2026-11-27 10:15:00,531 E 11008 11008] core_worker.cc:2465: Actor with class name: "
                b"'MapWorker(MapBatches(ShardScorer))' and ID: 'ab' has constructor arguments in the object store "
                b"and max_restarts > 0. If the arguments ...\n")
    with dropping_stderr_lines(HARMLESS_ACTOR_ARGS_WARNING):
        os.write(2, b"kept before\n")
        os.write(2, harmless)
        os.write(2, b"[E core_worker.cc:1: something else went wrong]\n")
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert err == "kept before\n[E core_worker.cc:1: something else went wrong]\nafter\n"
    assert re.search(HARMLESS_ACTOR_ARGS_WARNING, harmless)
