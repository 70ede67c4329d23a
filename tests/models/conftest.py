"""Tiny simulated model tables: one row per (customer, monthly cutoff), planted churn drivers."""

from __future__ import annotations

import pandas as pd
import pytest
from model_tables import make_model_table


@pytest.fixture(scope="session")
def model_table() -> pd.DataFrame:
    return make_model_table()[0]
