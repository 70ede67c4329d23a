"""Finding exact-duplicate candidates: the sorted row keys of ingest (features/validation.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from features import validation


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**32 - 1) | st.integers(0, 20), max_size=200))
def test_ingest_repeated_keys_are_the_keys_seen_more_than_once(values):
    """Exactly the values occurring twice or more, sorted, whatever their order."""
    keys = np.array(values, dtype=np.uint32)
    found, counts = np.unique(keys, return_counts=True)
    assert validation.repeated_keys(keys.copy()).tolist() == found[counts > 1].tolist()
    assert validation.repeated_keys(keys[::-1].copy()).tolist() == found[counts > 1].tolist()
