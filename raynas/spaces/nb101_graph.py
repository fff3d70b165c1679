"""NAS-Bench-101 cell graphs: validity, pruning, the benchmark's graph-invariant hash, and
the enumeration of every unique cell (no benchmark file needed).

A cell is an upper-triangular adjacency matrix on V ≤ 7 vertices (0 = input, V−1 = output)
with at most 9 edges, and an op for each interior vertex. The hash is the benchmark's
``hash_module``: an iterated MD5 of (out-degree, in-degree, label) refined over neighbours,
so isomorphic cells share it.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Sequence

import numpy as np

OPS: tuple[str, ...] = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
INPUT, OUTPUT = "input", "output"
MAX_VERTICES, MAX_EDGES = 7, 9
LABEL = {INPUT: -1, OUTPUT: -2, **{op: i for i, op in enumerate(OPS)}}


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def graph_hash(matrix: np.ndarray, labels: Sequence[int]) -> str:
    """The benchmark's module hash of an adjacency matrix and integer vertex labels."""
    n = len(labels)
    rows = [[int(matrix[v][w]) for w in range(n)] for v in range(n)]
    in_edges = [sum(rows[w][v] for w in range(n)) for v in range(n)]
    out_edges = [sum(rows[v]) for v in range(n)]
    preds = [[w for w in range(n) if rows[w][v]] for v in range(n)]
    succs = [[w for w in range(n) if rows[v][w]] for v in range(n)]
    hashes = [_md5(str((out_edges[v], in_edges[v], labels[v]))) for v in range(n)]
    for _ in range(n):
        hashes = [
            _md5("".join(sorted(hashes[w] for w in preds[v])) + "|"
                 + "".join(sorted(hashes[w] for w in succs[v])) + "|" + hashes[v])
            for v in range(n)
        ]
    return _md5(str(sorted(hashes)))


def spec_hash(matrix: np.ndarray, ops: Sequence[str]) -> str:
    return graph_hash(matrix, [LABEL[op] for op in ops])


def validate_spec(matrix: np.ndarray, ops: Sequence[str]) -> None:
    """Raise ValueError naming what is wrong with an (adjacency, ops) pair."""
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"NB101 adjacency must be a square matrix, got shape {m.shape}")
    n = m.shape[0]
    if not 2 <= n <= MAX_VERTICES:
        raise ValueError(f"NB101 cell needs 2..{MAX_VERTICES} vertices, got {n}")
    if not np.isin(m, (0, 1)).all():
        raise ValueError("NB101 adjacency entries must be 0 or 1")
    if np.tril(m).any():
        raise ValueError("NB101 adjacency must be strictly upper-triangular (a DAG in vertex order)")
    if int(m.sum()) > MAX_EDGES:
        raise ValueError(f"NB101 cell has {int(m.sum())} edges, at most {MAX_EDGES} allowed")
    if len(ops) != n:
        raise ValueError(f"NB101 ops list has {len(ops)} entries for {n} vertices")
    if ops[0] != INPUT or ops[-1] != OUTPUT or any(op not in OPS for op in ops[1:-1]):
        raise ValueError(f"NB101 ops must be 'input', then ops from {OPS}, then 'output'; got {list(ops)}")


def prune(matrix: np.ndarray, ops: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Drop vertices not on an input→output path (as the benchmark does before hashing).

    Raises ValueError when no path from input to output exists.
    """
    m = np.asarray(matrix, dtype=np.int64)
    n = len(ops)
    forward, stack = {0}, [0]
    while stack:
        v = stack.pop()
        for w in np.flatnonzero(m[v]):
            if int(w) not in forward:
                forward.add(int(w))
                stack.append(int(w))
    backward, stack = {n - 1}, [n - 1]
    while stack:
        v = stack.pop()
        for w in np.flatnonzero(m[:, v]):
            if int(w) not in backward:
                backward.add(int(w))
                stack.append(int(w))
    keep = sorted(forward & backward)
    if 0 not in keep or n - 1 not in keep:
        raise ValueError("NB101 cell has no path from input to output")
    return m[np.ix_(keep, keep)], [ops[i] for i in keep]


def _is_full_dag(rows: list[int], n: int) -> bool:
    """Every vertex but the input has an in-edge and every vertex but the output an out-edge."""
    for v in range(n - 1):
        if not rows[v]:
            return False
    for v in range(1, n):
        if not any(rows[w] >> v & 1 for w in range(v)):
            return False
    return True


def _matrices(n: int) -> Iterator[list[int]]:
    """Full-DAG upper-triangular matrices on n vertices with ≤ 9 edges, as row bitmasks."""
    slots = [(i, j) for i in range(n) for j in range(i + 1, n)]
    for bits in range(1 << len(slots)):
        if bin(bits).count("1") > MAX_EDGES:
            continue
        rows = [0] * n
        for k, (i, j) in enumerate(slots):
            if bits >> k & 1:
                rows[i] |= 1 << j
        if _is_full_dag(rows, n):
            yield rows


def benchmark_order(rows: Sequence[int]) -> int:
    """Position of a matrix in the benchmark's own enumeration: edge (x, y) is bit
    y(y−1)/2 + x. The benchmark kept the first graph of each isomorphism class in this order,
    and its network depends on the vertex order (channel split, truncation)."""
    n = len(rows)
    return sum(1 << (y * (y - 1) // 2 + x) for x in range(n) for y in range(x + 1, n) if rows[x] >> y & 1)


Key = tuple[int, int, tuple[int, ...]]  # (vertices, benchmark order, interior op ids)


def _label_matrices(job: tuple[int, int, int]) -> dict[str, tuple[Key, tuple[int, ...]]]:
    """Unique hashes of the labelled graphs for one slice of the n-vertex matrices, each
    with the representative the benchmark would have kept, and its row bitmasks."""
    n, part, parts = job
    found: dict[str, tuple[Key, tuple[int, ...]]] = {}
    for k, rows in enumerate(_matrices(n)):
        if k % parts != part:
            continue
        matrix = [[rows[v] >> w & 1 for w in range(n)] for v in range(n)]
        order = benchmark_order(rows)
        for interior in itertools.product(range(len(OPS)), repeat=n - 2):
            h = graph_hash(matrix, (-1, *interior, -2))
            key = (n, order, interior)
            if h not in found or key < found[h][0]:
                found[h] = (key, tuple(rows))
    return found


def enumerate_cells(processes: int | None = None, progress: bool = True) -> list[tuple[str, int, tuple[int, ...], tuple[int, ...]]]:
    """Every unique NB101 cell as (hash, vertices, row bitmasks, interior op ids), sorted by
    hash; each isomorphism class is represented by the graph the benchmark trained."""
    # The 7-vertex graphs are ~90% of the work: split them into 8 slices.
    jobs = [(n, p, parts) for n in range(2, MAX_VERTICES + 1)
            for parts in [8 if n == MAX_VERTICES else 1] for p in range(parts)]
    merged = run_slices(jobs, processes, progress)
    return [(h, merged[h][0][0], merged[h][1], merged[h][0][2]) for h in sorted(merged)]


def run_slices(jobs: Sequence[tuple[int, int, int]], processes: int | None = None,
               progress: bool = True) -> dict[str, tuple[Key, tuple[int, ...]]]:
    """The merged :func:`_label_matrices` of every job, each job in a fresh interpreter
    running this module (``python -m``): unlike a multiprocessing pool, which re-imports the
    caller's ``__main__`` in every worker, no user code runs again, guarded or not."""
    import os
    import pickle
    import subprocess
    import sys
    import time
    from concurrent.futures import ThreadPoolExecutor, as_completed

    def run(job: tuple[int, int, int]) -> dict:
        done = subprocess.run([sys.executable, "-m", __name__, *map(str, job)], capture_output=True)
        if done.returncode:
            last = (done.stderr.decode(errors="replace").strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"NB101 enumeration worker for slice {job} failed: {last}")
        return pickle.loads(done.stdout)

    merged: dict[str, tuple[Key, tuple[int, ...]]] = {}
    start = time.time()
    with ThreadPoolExecutor(processes or os.cpu_count() or 1) as pool:
        for done, future in enumerate(as_completed([pool.submit(run, job) for job in jobs]), start=1):
            for h, entry in future.result().items():
                if h not in merged or entry[0] < merged[h][0]:
                    merged[h] = entry
            if progress:
                print(f"\r[raynas] NB101 enumeration: {done}/{len(jobs)} slices, {len(merged):,} cells, "
                      f"{time.time() - start:.0f} s", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return merged


if __name__ == "__main__":  # one enumeration slice: python -m raynas.spaces.nb101_graph N PART PARTS
    import pickle
    import sys

    sys.stdout.buffer.write(pickle.dumps(_label_matrices(tuple(int(a) for a in sys.argv[1:4]))))
