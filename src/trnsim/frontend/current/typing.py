"""`nki.typing` (nt): tensor annotations for current-API kernels (`nt.tensor[shape]`, `nt.mutable_tensor`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..legacy.typing import TensorType as _LegacyTensorType
from ..legacy.typing import _Mutable, _TensorFactory


class TensorType(_LegacyTensorType):
    """`nt.tensor[shape]` / `nt.tensor[shape, dtype]`: an annotation, and a shape placeholder for timing-only
    runs (`trnsim.estimate(kernel, nt.tensor[[M, K], nl.bfloat16], ...)`)."""


def _is_dtype(item: Any) -> bool:
    """Any trailing item that is not an integer dimension is the dtype."""
    return not isinstance(item, (int, np.integer))


tensor = _TensorFactory(TensorType, _is_dtype)
mutable_tensor = _Mutable()
