"""ego4d-lta: from Ego4D annotations and clips to a scored Ego4D LTA challenge submission.

The Python API (`ego4d_lta/api.py`): `score_submission`, `load_run`, `predict`, `read_cache` (and their records
`Run`, `Forecast`), loaded on first use so that `import ego4d_lta` (and the CLI's start) stays cheap.
"""

__version__ = "0.1.0"

_API = ("Forecast", "Run", "load_run", "predict", "read_cache", "score_submission")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> object:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.api"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
