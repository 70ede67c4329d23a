"""`churn table fit` reads files as they come: compressed, Excel, Latin-1, `;` with decimal
commas; an empty file or an ambiguous archive exits 2 with a message. The same table in every
form gives the same columns, types, metrics and scores."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.snapshot.reading import ReadOptions, detect_delimiter, read_table

from helpers import churn

CITIES = ["São Paulo", "Zürich", "Köln", "Montréal", "Lisbon"]


def make_table(n: int = 300, seed: int = 7) -> pd.DataFrame:
    """A small churn table with accented city names, blanks in a numeric column and cents."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, n)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.5, 0.3, 0.2])
    city = rng.choice(CITIES, n)
    z = 0.2 - 0.05 * tenure + 1.3 * (contract == "Month-to-month") + 0.8 * (city == "Zürich")
    churned = rng.random(n) < 1 / (1 + np.exp(-z))
    charges = rng.uniform(20, 110, n).round(2)
    total = [" " if t == 0 else f"{c * t:.2f}" for c, t in zip(charges, tenure, strict=True)]
    return pd.DataFrame(
        {
            "customerID": [f"{i:04d}-ABCD" for i in range(n)],
            "tenure": tenure,
            "Contract": contract,
            "City": city,
            "MonthlyCharges": charges,
            "TotalCharges": total,  # text: blank for new customers, as in IBM Telco
            "Churn": np.where(churned, "Yes", "No"),
        }
    )


def european(frame: pd.DataFrame) -> pd.DataFrame:
    """The table as European Excel writes numbers: decimal comma, `.` between thousands."""
    swap = str.maketrans(",.", ".,")
    out = frame.copy()
    out["MonthlyCharges"] = [f"{v:.2f}".replace(".", ",") for v in frame["MonthlyCharges"]]
    out["TotalCharges"] = [
        v if not v.strip() else f"{float(v):,.2f}".translate(swap) for v in frame["TotalCharges"]
    ]
    return out


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory as cwd (no params.yaml: defaults) with its own MLflow store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def write_copies(frame: pd.DataFrame, directory: Path) -> dict[str, Path]:
    """The table as a plain UTF-8 CSV and in every other form read."""
    plain = directory / "churn.csv"
    frame.to_csv(plain, index=False)
    copies = {"plain": plain}
    copies["gz"] = directory / "churn_gz.csv.gz"
    copies["gz"].write_bytes(gzip.compress(plain.read_bytes()))
    copies["zip"] = directory / "churn_zip.csv.zip"
    with zipfile.ZipFile(copies["zip"], "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(plain, "export/churn.csv")
    copies["latin1"] = directory / "churn_latin1.csv"
    frame.to_csv(copies["latin1"], index=False, encoding="latin-1")
    copies["semicolon"] = directory / "churn_semicolon.csv"
    european(frame).to_csv(copies["semicolon"], sep=";", index=False, encoding="cp1252")
    copies["xlsx"] = directory / "churn.xlsx"
    with pd.ExcelWriter(copies["xlsx"]) as workbook:
        frame.to_excel(workbook, sheet_name="customers", index=False)
        pd.DataFrame({"note": ["exported from the CRM"]}).to_excel(workbook, sheet_name="about")
    return copies


def fit(path: Path, out: Path, *options: str) -> tuple[dict, pd.DataFrame]:
    """`churn table fit` with the cheapest evaluation (one holdout); summary and scores."""
    code = churn(
        "table", "fit", path, "--target", "Churn", "--positive", "Yes", "--id", "customerID",
        "--out", out, *options,
    )  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return summary, pd.read_parquet(out / "scores.parquet")


def same_value_text(a: pd.Series, b: pd.Series) -> bool:
    """Reason values agree: as numbers where both are numbers (1234.50 is 1234.5), else as text."""
    x, y = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
    numeric = x.notna() & y.notna()
    text_a, text_b = a[~numeric].fillna("(none)"), b[~numeric].fillna("(none)")
    return bool(np.allclose(x[numeric], y[numeric]) and (text_a == text_b).all())


# The model search is the same code for every form of the file; one candidate, two inner folds
# and two blend weights make each of the six fits cheap without touching how the file is read.
SMALL_SEARCH = """\
data:
  candidates:
    small: {learning_rate: 0.03, num_leaves: 8, min_data_in_leaf: 30, feature_fraction: 0.7}
  inner_folds: 2
  blend_weights: [1.0, 0.0]
"""


def test_every_form_of_the_table_gives_the_same_columns_types_and_result(workdir: Path) -> None:
    (workdir / "params.yaml").write_text(SMALL_SEARCH, encoding="utf-8")
    frame = make_table()
    copies = write_copies(frame, workdir)
    base, base_scores = fit(copies["plain"], workdir / "out_plain")
    kinds = {c["column"]: c["kind"] for c in base["schema"]}
    assert kinds["TotalCharges"] == kinds["MonthlyCharges"] == "numeric"
    assert kinds["City"] == "categorical" and "City" in base["features"]
    metrics = ("roc_auc", "roc_auc_folds", "pr_auc", "log_loss", "brier", "n_rows", "positives")
    for form in ("gz", "zip", "latin1", "semicolon", "xlsx"):
        options = ("--sheet", "customers") if form == "xlsx" else ()
        summary, scores = fit(copies[form], workdir / f"out_{form}", *options)
        assert {c["column"]: c["kind"] for c in summary["schema"]} == kinds, form
        assert summary["features"] == base["features"], form
        assert summary["dropped_columns"] == base["dropped_columns"], form
        for key in metrics:
            assert summary[key] == pytest.approx(base[key], abs=1e-9), (form, key)
        assert list(scores.columns) == list(base_scores.columns)
        for column in scores.columns:
            if column.endswith("_value"):
                assert same_value_text(scores[column], base_scores[column]), (form, column)
            else:
                pd.testing.assert_series_equal(scores[column], base_scores[column], atol=1e-9)


def test_latin1_and_semicolon_copies_read_as_the_original(tmp_path: Path) -> None:
    """Accents decoded (not mojibake), `4,05` and `2.953,24` read as numbers, blanks missing."""
    frame = make_table(60)
    copies = write_copies(frame, tmp_path)
    original = read_table(copies["plain"])
    pd.testing.assert_frame_equal(read_table(copies["latin1"]), original)
    assert set(read_table(copies["latin1"])["City"]) == set(CITIES)
    semicolon = read_table(copies["semicolon"])
    assert list(semicolon.columns) == list(original.columns)
    assert semicolon["MonthlyCharges"].dtype == "float64"
    expected_total = pd.to_numeric(frame["TotalCharges"].str.strip().replace("", None))
    np.testing.assert_allclose(semicolon["TotalCharges"], expected_total.astype(float))
    pd.testing.assert_frame_equal(
        semicolon.drop(columns="TotalCharges"), original.drop(columns="TotalCharges")
    )
    # forced: --encoding reads the bytes as told; --decimal . keeps decimal commas as text
    assert "SÃ£o Paulo" in set(read_table(copies["plain"], ReadOptions(encoding="latin-1"))["City"])
    as_text = read_table(copies["semicolon"], ReadOptions(decimal="."))
    assert as_text["MonthlyCharges"].iloc[0] == european(frame)["MonthlyCharges"].iloc[0]


def test_decimal_comma_forced_and_detected_only_where_it_is_used(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id;amount;code\n1;4.05;01.01.2024\n2;12.5;02.01.2024\n", encoding="utf-8")
    dot = read_table(path)  # `;` with decimal points: no comma reading
    assert dot["amount"].tolist() == [4.05, 12.5] and dot["code"].iloc[0] == "01.01.2024"
    path.write_text('id\tamount\n1\t"4,05"\n2\t"1.234,5"\n', encoding="utf-8")
    assert detect_delimiter(path.read_text(encoding="utf-8")) == "\t"
    forced = read_table(path, ReadOptions(decimal=","))
    assert forced["amount"].tolist() == [4.05, 1234.5]


def test_sheet_by_position_and_a_missing_sheet(workdir: Path, caplog) -> None:
    copies = write_copies(make_table(40), workdir)
    assert len(read_table(copies["xlsx"])) == 40  # the first sheet by default
    second = read_table(copies["xlsx"], ReadOptions(sheet="2"))  # by position, 1 = first
    assert list(second.columns) == ["Unnamed: 0", "note"]
    args = ("--target", "Churn", "--positive", "Yes")
    assert churn("table", "fit", copies["xlsx"], *args, "--sheet", "Sheet9") == 2
    assert "no sheet 'Sheet9'" in caplog.text and "['customers', 'about']" in caplog.text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty; export the table again with a header row"),
        (b"customerID,tenure,Churn\n", "the table has no rows (columns: customerID, tenure"),
        (b"\xef\xbb\xbf  \r\n", "the file is empty"),
    ],
)
def test_empty_file_exits_2_naming_the_file(
    workdir: Path, content: bytes, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    (workdir / "empty.csv").write_bytes(content)
    assert churn("table", "fit", "empty.csv", "--target", "Churn", "--positive", "Yes") == 2
    assert f"empty.csv: {message}" in caplog.text


def test_bad_archives_and_options_exit_2_with_a_message(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    args = ("--target", "Churn", "--positive", "Yes")
    make_table(40).to_csv(workdir / "a.csv", index=False)
    with zipfile.ZipFile(workdir / "two.zip", "w") as archive:
        archive.write(workdir / "a.csv", "a.csv")
        archive.write(workdir / "a.csv", "b.csv")
    assert churn("table", "fit", "two.zip", *args) == 2
    assert "found 2 (members: a.csv, b.csv)" in caplog.text
    (workdir / "latin.csv").write_bytes("x,Churn\nZürich,Yes\n".encode("latin-1"))
    assert churn("table", "fit", "latin.csv", *args, "--encoding", "utf-8") == 2
    assert "latin.csv: not valid utf-8 (byte" in caplog.text
    assert churn("table", "fit", "a.csv", *args, "--encoding", "klingon") == 2
    assert "unknown encoding 'klingon'" in caplog.text
    assert churn("table", "fit", "a.csv", *args, "--decimal", ";") == 2
    assert "--decimal: expected ',' or '.'" in caplog.text
    assert churn("table", "fit", "a.csv", *args, "--sheet", "1") == 2
    assert "--sheet applies to Excel workbooks" in caplog.text
    (workdir / "broken.csv.gz").write_bytes(b"not gzip")
    assert churn("table", "fit", "broken.csv.gz", *args) == 2
    assert "broken.csv.gz: cannot be decompressed" in caplog.text
