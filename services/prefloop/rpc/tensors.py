"""numpy arrays <-> ``prefloop.v1.Tensor`` (shape, dtype name, raw little-endian C-order bytes).

Why raw bytes: a batch of 64 prompts x 16 responses x 384 float32 features is 1.5 MB as bytes
and ~50x slower to encode as repeated doubles. Decoding checks everything a client can get
wrong (unknown dtype, byte count that does not match the shape, wrong rank or shape, a shape
too large for numpy) and raises :class:`TensorError` naming the field, which the server turns
into INVALID_ARGUMENT. Element counts are computed with Python integers, so a shape whose
product overflows int64 cannot wrap around to match the bytes sent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from prefloop.v1 import common_pb2

ALLOWED_DTYPES = ("float32", "float64", "bool", "int64", "int32", "int8")


class TensorError(ValueError):
    """A Tensor message is malformed or has the wrong dtype or shape for its field."""


def to_tensor(array: np.ndarray) -> common_pb2.Tensor:
    """Encode an array (bool, int or float) as a Tensor message, little-endian, C order."""
    arr = np.asarray(array)
    name = arr.dtype.name
    if name not in ALLOWED_DTYPES:
        raise TensorError(f"cannot send an array of dtype {name}; allowed: {ALLOWED_DTYPES}")
    little = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    return common_pb2.Tensor(shape=list(arr.shape), dtype=name, data=little.tobytes())


def is_empty(tensor: common_pb2.Tensor) -> bool:
    """True for an unset Tensor field (no dtype, no shape, no bytes): an optional array left out."""
    return not tensor.dtype and not tensor.shape and not tensor.data


def from_tensor(
    tensor: common_pb2.Tensor,
    field: str,
    *,
    kinds: str = "fbiu",
    ndim: int | None = None,
    shape: Sequence[int | None] | None = None,
) -> np.ndarray:
    """Decode and validate a Tensor; ``field`` names it in every error.

    Args:
        kinds: accepted numpy dtype kinds (``f`` float, ``b`` bool, ``i``/``u`` integers).
        ndim: required rank.
        shape: required shape; ``None`` entries are free.
    """
    if tensor.dtype not in ALLOWED_DTYPES:
        raise TensorError(
            f"{field}.dtype: {tensor.dtype!r} is not a supported dtype; use one of {ALLOWED_DTYPES}"
        )
    dtype = np.dtype(tensor.dtype).newbyteorder("<")
    if dtype.kind not in kinds:
        raise TensorError(f"{field}.dtype: {tensor.dtype} is not accepted here (kinds {kinds!r})")
    dims = [int(d) for d in tensor.shape]
    if any(d < 0 for d in dims):
        raise TensorError(f"{field}.shape: negative dimension in {dims}")
    count = math.prod(dims)  # exact: np.prod would wrap around on an overflowing shape
    if count * dtype.itemsize != len(tensor.data):
        raise TensorError(
            f"{field}.data: {len(tensor.data)} bytes do not match shape {dims} of {tensor.dtype} "
            f"({count * dtype.itemsize} bytes expected)"
        )
    if ndim is not None and len(dims) != ndim:
        raise TensorError(f"{field}.shape: expected {ndim} dimensions, got shape {dims}")
    if shape is not None and (
        len(shape) != len(dims)
        or any(want is not None and want != got for want, got in zip(shape, dims, strict=True))
    ):
        want_txt = tuple("*" if s is None else s for s in shape)
        raise TensorError(f"{field}.shape: expected {want_txt}, got {tuple(dims)}")
    try:
        arr = np.frombuffer(tensor.data, dtype=dtype).reshape(dims)
    except (ValueError, OverflowError) as e:  # e.g. (0, 2**62): no bytes, but too big for numpy
        raise TensorError(f"{field}.shape: {dims} is not a valid array shape ({e})") from None
    return arr.astype(dtype.newbyteorder("="), copy=True)


def optional_tensor(
    tensor: common_pb2.Tensor,
    field: str,
    *,
    kinds: str = "fbiu",
    ndim: int | None = None,
    shape: Sequence[int | None] | None = None,
) -> np.ndarray | None:
    """Like :func:`from_tensor`, but an unset field decodes to ``None``."""
    if is_empty(tensor):
        return None
    return from_tensor(tensor, field, kinds=kinds, ndim=ndim, shape=shape)


def check_finite(array: np.ndarray, field: str, mask: np.ndarray | None = None) -> None:
    """Reject NaN or infinite values (where ``mask`` is True, if given), naming the field."""
    values = array if mask is None else array[mask]
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise TensorError(f"{field}: contains NaN or infinite values")


def check_no_infinity(array: np.ndarray, field: str) -> None:
    """Reject +inf / -inf, naming the field and the first position; NaN is allowed.

    Why: in ``judge_scores`` NaN means "no stored score" (a padded slot or an unscored
    response), but an infinite score is a corrupt value a rule would rank above everything.
    """
    bad = np.argwhere(np.isinf(array)) if array.dtype.kind == "f" else np.empty((0, 0))
    if len(bad):
        where = tuple(int(i) for i in bad[0])
        raise TensorError(
            f"{field}: {len(bad)} infinite value(s), first at {where} "
            f"({float(array[where])}); NaN marks a missing score, infinities are not allowed"
        )
