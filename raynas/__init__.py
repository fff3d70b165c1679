"""raynas: distributed batch scoring of NAS search spaces with training-free proxies.

The numerical core (``raynas.spaces``, ``raynas.proxies``, ``raynas.scoring``) has no Ray
dependency; ``raynas.distributed`` is the thin Ray layer on top of it.
"""

__version__ = "0.1.0"

__all__ = ["CellScorer", "Ensemble", "ScoringSpec", "add_ensembles", "load_scores", "score", "__version__"]


def __getattr__(name: str):
    # Lazy re-export: ``import raynas`` stays cheap (no torch) for the CLI and Ray driver.
    if name in ("CellScorer", "score"):
        from raynas import scoring

        return getattr(scoring, name)
    if name == "load_scores":
        from raynas.export import load_scores

        return load_scores
    if name in ("Ensemble", "add_ensembles"):
        from raynas import ensemble

        return getattr(ensemble, name)
    if name == "ScoringSpec":
        from raynas.spec import ScoringSpec

        return ScoringSpec
    raise AttributeError(f"module 'raynas' has no attribute {name!r}")
