"""Layer application: image layers, in order, into a root filesystem, safely against hostile layers.

`unpack_layers` applies layers into a directory; `RootfsCache` keeps the result per chain of layers.
"""

from registry.unpack.apply import Options
from registry.unpack.cache import RootfsCache, chain_id
from registry.unpack.errors import PathEscape, UnpackError
from registry.unpack.layers import LayerBlob, unpack_layers
from registry.unpack.limits import Limits
from registry.unpack.paths import resolve

__all__ = [
    "LayerBlob",
    "Limits",
    "Options",
    "PathEscape",
    "RootfsCache",
    "UnpackError",
    "chain_id",
    "resolve",
    "unpack_layers",
]
