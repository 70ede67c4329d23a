"""Finding exact-duplicate candidates: the sorted row keys of ingest (features/validation.py) and
the bitmap of hash prefixes (features/duplicates.py, which ingest no longer uses)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import validation
from features.duplicates import repeated_keys


@settings(max_examples=60, deadline=None)
@given(
    bits=st.integers(min_value=6, max_value=12),
    batches=st.lists(
        st.lists(st.integers(min_value=0, max_value=2**12 - 1), max_size=40), max_size=5
    ),
)
def test_repeated_keys_are_the_keys_seen_more_than_once(bits, batches):
    """Across and within batches, order-independent: exactly the keys occurring twice or more."""
    arrays = [np.array([k % 2**bits for k in b], dtype=np.uint64) for b in batches]
    everything = np.concatenate([np.empty(0, np.uint64), *arrays])
    values, counts = np.unique(everything, return_counts=True)
    assert repeated_keys(arrays, bits).tolist() == values[counts > 1].tolist()
    assert repeated_keys(arrays[::-1], bits).tolist() == values[counts > 1].tolist()


def test_key_bits_outside_the_bitmap_range_are_an_error():
    with pytest.raises(ValueError, match="key_bits"):
        repeated_keys([], 33)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**32 - 1) | st.integers(0, 20), max_size=200))
def test_ingest_repeated_keys_are_the_keys_seen_more_than_once(values):
    """Exactly the values occurring twice or more, sorted, whatever their order."""
    keys = np.array(values, dtype=np.uint32)
    found, counts = np.unique(keys, return_counts=True)
    assert validation.repeated_keys(keys.copy()).tolist() == found[counts > 1].tolist()
    assert validation.repeated_keys(keys[::-1].copy()).tolist() == found[counts > 1].tolist()
