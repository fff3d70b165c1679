"""What an NB201 cell is made of: its five candidate ops and its six edges, in the
benchmark's arch-string order. Torch-free, shared by the space (:mod:`raynas.spaces.nb201`:
indices, arch strings) and the network builder (:mod:`raynas.spaces.nb201_network`), so that
neither imports the other."""

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (target node, source node) for the six edges, in arch-string order.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
