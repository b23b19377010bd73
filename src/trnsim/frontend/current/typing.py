"""`nki.typing` (nt): tensor annotations for current-API kernels (`nt.tensor[shape]`, `nt.mutable_tensor`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..legacy.typing import TensorType as _LegacyTensorType


class TensorType(_LegacyTensorType):
    """`nt.tensor[shape]` / `nt.tensor[shape, dtype]`: an annotation, and a shape placeholder for timing-only
    runs (`trnsim.estimate(kernel, nt.tensor[[M, K], nl.bfloat16], ...)`)."""


class _TensorFactory:
    def __getitem__(self, item: Any) -> TensorType:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], (list, tuple)):
            return TensorType(tuple(item[0]), item[1])
        if isinstance(item, (list, tuple)):
            if item and not isinstance(item[-1], (int, np.integer)):
                return TensorType(tuple(item[:-1]), item[-1])
            return TensorType(tuple(item))
        return TensorType((int(item),))


tensor = _TensorFactory()


class _Mutable:
    """`nt.mutable_tensor`: the kernel writes into this parameter (the write is copied back to the caller)."""

    _trnsim_mutable = True

    def __getitem__(self, item: Any) -> _Mutable:
        return self

    def __repr__(self) -> str:
        return "mutable_tensor"


mutable_tensor = _Mutable()
