"""The Ray layer: a driver that shards a space over a Ray Data actor pool. Thin on purpose —
all numerics live in :mod:`raynas.scoring`."""
