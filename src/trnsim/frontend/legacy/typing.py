"""`neuronxcc.nki.typing` (nt): tensor shape annotations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...core import dtypes


class TensorType:
    """`nt.tensor[shape, dtype]`: an annotation, and a shape/dtype placeholder for timing-only runs."""

    def __init__(self, shape: tuple[int, ...], dtype: Any = None) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtypes.normalize(dtype) if dtype is not None else np.dtype(np.float32)

    def __repr__(self) -> str:
        return f"tensor[{list(self.shape)}, {dtypes.name_of(self.dtype)}]"


def _is_dtype(item: Any) -> bool:
    return isinstance(item, (np.dtype, type, str)) and not isinstance(item, int)


class _TensorFactory:
    """`nt.tensor[...]`: `[shape]`, `[shape, dtype]` or `[d0, d1, ..., dtype]`; `is_dtype` spots a trailing dtype."""

    def __init__(self, tensor_type: type[TensorType] = TensorType, is_dtype: Callable[[Any], bool] = _is_dtype) -> None:
        self.tensor_type = tensor_type
        self.is_dtype = is_dtype

    def __getitem__(self, item: Any) -> TensorType:
        make = self.tensor_type
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], (list, tuple)):
            return make(tuple(item[0]), item[1])
        if isinstance(item, (list, tuple)):
            if item and self.is_dtype(item[-1]):
                return make(tuple(item[:-1]), item[-1])
            return make(tuple(item))
        return make((int(item),))


tensor = _TensorFactory()


class _Mutable:
    """`nt.mutable_tensor`: the kernel writes into this parameter (the write is copied back to the caller)."""

    _trnsim_mutable = True

    def __getitem__(self, item: Any) -> _Mutable:
        return self

    def __repr__(self) -> str:
        return "mutable_tensor"


mutable_tensor = _Mutable()
scalar = float
