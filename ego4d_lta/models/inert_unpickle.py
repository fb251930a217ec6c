"""Read a foreign torch checkpoint's tensors without running anything it pickled.

Official Ego4D Lightning `.ckpt` files pickle their fvcore config beside the tensors, which
`torch.load(weights_only=True)` refuses. This unpickler rebuilds tensors and plain containers and turns every
other global into an inert stand-in that absorbs its arguments and state: no constructor, function or
`__setstate__` from the file ever runs, so a crafted file cannot execute code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch", "Size"),
    ("collections", "OrderedDict"),
}
"""The only callables a file may name: how torch rebuilds its tensors, and the ordered dict of state dicts."""


class Inert:
    """Whatever else the file names (a config class, a function): built from nothing, keeps nothing, runs nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass

    def __setitem__(self, key: object, value: object) -> None:
        pass

    def append(self, value: object) -> None:
        pass

    def extend(self, values: object) -> None:
        pass


class Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        return Inert


class _PickleModule:
    """What `torch.load(pickle_module=...)` needs: this module's Unpickler, pickle's load for old files."""

    Unpickler = Unpickler
    __name__ = "ego4d_lta.models.inert_unpickle"

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        return Unpickler(file, **kwargs).load()


def load_tensors(path: Path | str) -> Any:
    """The checkpoint at `path`, on the CPU, with every non-tensor object from the file replaced by `Inert`."""
    # torch refuses a pickle_module together with weights_only=True; here _PickleModule is what restricts the globals
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_PickleModule)
