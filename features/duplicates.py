"""Candidates for exact duplicate rows of a large table, in one streaming pass and fixed memory.

Each row is reduced to a key (the top bits of a hash of the whole row); a bitmap with one bit per
possible key remembers the keys seen, so a key met again is a candidate. Every duplicate row's key
repeats, so the candidates are a superset of the duplicates: whole rows are then compared only
among the rows whose key is a candidate (features/validation.py). The bitmap has 2**k bits, at
most 2**32 (512 MiB); with n rows about n**2 / 2**(k+1) keys collide by chance, which costs only
a larger candidate set, never a wrong answer.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numba import njit

MAX_KEY_BITS = 32


@njit(cache=True, nogil=True)
def _repeats(keys: np.ndarray, bitmap: np.ndarray, out: np.ndarray) -> int:  # pragma: no cover
    """Set the bit of each key; write the keys whose bit was already set to `out`; their count."""
    n = 0
    one, six, low = np.uint64(1), np.uint64(6), np.uint64(63)
    for i in range(keys.size):
        key = keys[i]
        word = key >> six
        bit = one << (key & low)
        if bitmap[word] & bit:
            out[n] = key
            n += 1
        else:
            bitmap[word] |= bit
    return n


def repeated_keys(batches: Iterable[np.ndarray], key_bits: int) -> np.ndarray:
    """The distinct keys (each < 2**key_bits) that occur more than once across `batches`."""
    if not 6 <= key_bits <= MAX_KEY_BITS:
        raise ValueError(f"key_bits must be in 6..{MAX_KEY_BITS}, got {key_bits}")
    bitmap = np.zeros(2 ** (key_bits - 6), dtype=np.uint64)
    found = []
    for batch in batches:
        keys = np.ascontiguousarray(batch, dtype=np.uint64)
        out = np.empty_like(keys)
        n = _repeats(keys, bitmap, out)
        if n:
            found.append(np.unique(out[:n]))
    del bitmap
    return np.unique(np.concatenate(found)) if found else np.empty(0, dtype=np.uint64)
