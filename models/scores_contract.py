"""The scores file's contract: the columns of `churn score`'s output (`paths.scores`) that a
downstream reader may rely on, and their kinds.

`models.scoring` writes them (`score_frame`, `population_columns`; tested there). They are declared
in this module, which imports nothing, so that a reader such as the early-warning rules depends on
the contract and not on the scoring code's model stack (LightGBM, TreeSHAP, the model files).
The value columns are present when the fee is known (`value.fee_column`), the reasons up to
`score.reasons` (3 by default); a reader treats an absent column as missing values.
"""

from __future__ import annotations

from typing import Literal

ColumnKind = Literal["number", "string"]

SCORE_COLUMNS: dict[str, ColumnKind] = {
    "churn_probability": "number",
    "risk_decile": "number",
    "risk_tier": "string",
    "churn_type": "string",
    "clv": "number",
    "value_tier": "string",
    "value_at_risk": "number",
    "priority_rank": "number",
    "reason_1": "string",  # the feature that raises the customer's risk the most
    "reason_2": "string",
    "reason_3": "string",
    "reason_1_text": "string",  # its readable sentence
    "reason_2_text": "string",
    "reason_3_text": "string",
}
