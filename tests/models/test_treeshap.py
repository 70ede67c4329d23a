"""models.explain.treeshap: the fast backend reproduces LightGBM's pred_contrib on every tree
feature."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from models.explain import treeshap

ATOL = 1e-9  # both sides are exact TreeSHAP in float64; only summation order differs


def _train(
    x: pd.DataFrame | np.ndarray, y: np.ndarray, rounds: int = 30, **params: Any
) -> lgb.Booster:
    base = {
        "objective": "binary",
        "verbosity": -1,
        "seed": 7,
        "num_threads": 1,
        "deterministic": True,
    }
    return lgb.train({**base, **params}, lgb.Dataset(x, label=y), num_boost_round=rounds)


def _nodes(booster: lgb.Booster) -> list[dict]:
    out, stack = [], [t["tree_structure"] for t in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_index" in node:
            out.append(node)
            stack.extend((node["left_child"], node["right_child"]))
    return out


def _max_depth(node: dict, depth: int = 0) -> int:
    if "split_index" not in node:
        return depth
    return max(_max_depth(node[c], depth + 1) for c in ("left_child", "right_child"))


def _assert_matches_lightgbm(booster: lgb.Booster, x: pd.DataFrame | np.ndarray, **kw: Any) -> None:
    """Both kernels (distinct branch patterns once, and every row on its own) match pred_contrib."""
    reference = booster.predict(x, pred_contrib=True)
    for dedupe in (True, False):
        explainer = treeshap.Explainer(booster, backend="numba", dedupe=dedupe, **kw)
        ours = explainer.contributions(x)
        assert explainer.backend == "numba"
        assert ours.shape == reference.shape
        np.testing.assert_allclose(ours, reference, rtol=0, atol=ATOL)
        np.testing.assert_allclose(ours.sum(axis=1), booster.predict(x, raw_score=True), atol=1e-9)


def _numeric_rows(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Numbers with NaNs, exact zeros and a skewed column; churn depends on all of them."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "days_since_last_login": rng.exponential(10, n),
            "csat_mean_90d": np.where(rng.random(n) < 0.3, np.nan, rng.normal(7, 2, n)),
            "payment_failures_90d": np.where(rng.random(n) < 0.6, 0.0, rng.poisson(2, n) + 0.5),
            "tenure_days": rng.integers(1, 900, n).astype(float),
            "noise": rng.normal(size=n),
        }
    )
    z = (
        -1.0
        + 0.08 * x["days_since_last_login"]
        - 0.4 * x["csat_mean_90d"].fillna(4)
        + 0.7 * x["payment_failures_90d"]
        + 2.0 * x["csat_mean_90d"].isna()
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return x, y


def _probe_rows(booster: lgb.Booster, x: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Scoring rows that hit the edge cases: NaN everywhere, exact zeros, values AT thresholds."""
    rng = np.random.default_rng(seed)
    probe = x.sample(400, random_state=seed).reset_index(drop=True)
    names = booster.feature_name()
    for node in _nodes(booster):
        if node["decision_type"] != "<=":
            continue
        row = {c: probe.iloc[int(rng.integers(len(probe)))][c] for c in names}
        row[names[node["split_feature"]]] = float(node["threshold"])
        probe.loc[len(probe)] = row
    nan_rows = probe.sample(100, random_state=seed + 1).index
    probe.loc[nan_rows, "tenure_days"] = np.nan  # never missing in training: NaN → 0 rule
    probe.loc[probe.sample(50, random_state=seed + 2).index, "noise"] = 0.0
    probe.loc[len(probe)] = dict.fromkeys(names, np.nan)
    probe.loc[len(probe)] = dict.fromkeys(names, 0.0)
    return probe


@pytest.mark.parametrize(
    ("params", "missing_type"),
    [
        ({"use_missing": True}, "NaN"),
        ({"zero_as_missing": True}, "Zero"),
        ({"use_missing": False}, "None"),
    ],
)
def test_numeric_splits_and_missing_types_match_pred_contrib(
    params: dict[str, Any], missing_type: str
) -> None:
    x, y = _numeric_rows(3000, seed=1)
    booster = _train(x, y, num_leaves=15, min_data_in_leaf=10, **params)
    assert missing_type in {n["missing_type"] for n in _nodes(booster)}
    _assert_matches_lightgbm(booster, _probe_rows(booster, x, seed=2))


def test_categorical_splits_match_pred_contrib_including_unseen_and_missing_levels() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    levels = [f"plan_{i}" for i in range(12)]
    plan = rng.choice(levels, n)
    country = rng.choice(["DE", "FR", "US"], n)  # <= max_cat_to_onehot: one-vs-rest splits
    x = pd.DataFrame(
        {
            "plan": pd.Categorical(np.where(rng.random(n) < 0.1, None, plan), categories=levels),
            "country": pd.Categorical(country, categories=["DE", "FR", "US"]),
            "tenure_days": rng.integers(1, 900, n).astype(float),
        }
    )
    risk = pd.Series(plan).isin(levels[::3]).to_numpy() * 1.5 + (country == "US") - 1.2
    y = (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(int)
    booster = _train(x, y, num_leaves=15, min_data_in_leaf=20, min_data_per_group=10, cat_smooth=1)
    assert "==" in {n["decision_type"] for n in _nodes(booster)}

    probe = x.iloc[:500].copy()
    # scoring frame whose categories are in another order and include a level never trained on:
    # LightGBM recodes to the training levels (unseen → missing); so must we
    other = [*levels[::-1], "plan_new"]
    plan_values = np.array(probe["plan"].astype(object), dtype=object)
    plan_values[:20] = "plan_new"
    probe["plan"] = pd.Categorical(plan_values, categories=other)
    _assert_matches_lightgbm(booster, probe)


def test_deep_trees_match_pred_contrib_with_and_without_pattern_tables() -> None:
    x, y = _numeric_rows(6000, seed=4)
    booster = _train(x, y, rounds=10, num_leaves=120, min_data_in_leaf=2, max_depth=-1)
    assert max(_max_depth(t["tree_structure"]) for t in booster.dump_model()["tree_info"]) > 10
    probe = _probe_rows(booster, x, seed=5)
    _assert_matches_lightgbm(booster, probe)
    # leaves with more distinct path features than the table cap take the direct O(d^2) path
    _assert_matches_lightgbm(booster, probe, max_table_bits=2)


def test_deduplicated_kernel_equals_the_per_row_kernel_in_any_tree_grouping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows repeated (so branch patterns repeat), trees of <= 63 internal nodes: the distinct
    patterns' contributions added to every row equal the per-row kernel's to float rounding, also
    when the trees are handled a few at a time and the contribution budget holds one tree."""
    x, y = _numeric_rows(4000, seed=13)
    booster = _train(x, y, rounds=25, num_leaves=40, min_data_in_leaf=5)
    e = treeshap.Explainer(booster, dedupe=True)._ensemble
    assert e is not None and 20 < e.max_tree_nodes <= 63
    rows = pd.concat([_probe_rows(booster, x, seed=14)] * 3, ignore_index=True)
    per_row = treeshap.Explainer(booster, dedupe=False).contributions(rows)
    together = treeshap.Explainer(booster, dedupe=True).contributions(rows)
    np.testing.assert_allclose(together, per_row, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(
        together[: len(rows) // 3], together[len(rows) // 3 : -len(rows) // 3]
    )
    monkeypatch.setattr(treeshap, "_TREE_GROUP", 4)
    monkeypatch.setattr(treeshap, "_UNIQUE_BUDGET", 1)
    np.testing.assert_array_equal(treeshap.Explainer(booster).contributions(rows), together)


def test_trees_over_63_internal_nodes_use_the_per_row_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, y = _numeric_rows(3000, seed=15)
    booster = _train(x, y, rounds=3, num_leaves=100, min_data_in_leaf=2)
    explainer = treeshap.Explainer(booster, dedupe=True)
    assert explainer._ensemble is not None and explainer._ensemble.max_tree_nodes > 63

    def no_keys(*args: Any) -> None:
        raise AssertionError("a row's branch key holds at most 63 internal nodes")

    monkeypatch.setattr(treeshap, "_tree_keys", no_keys)
    np.testing.assert_allclose(
        explainer.contributions(x), booster.predict(x, pred_contrib=True), rtol=0, atol=ATOL
    )


def test_single_leaf_trees_contribute_only_to_the_bias() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 3))
    y = (x[:, 0] > 0).astype(int)
    stump = _train(x, y, rounds=3, min_data_in_leaf=500)  # nothing can split: one leaf
    assert [t["num_leaves"] for t in stump.dump_model()["tree_info"]] == [1]
    _assert_matches_lightgbm(stump, x)
    mixed = lgb.train(
        {"objective": "binary", "verbosity": -1, "min_data_in_leaf": 5, "num_leaves": 4},
        lgb.Dataset(x, label=y),
        num_boost_round=3,
        init_model=stump,
    )
    assert [t["num_leaves"] for t in mixed.dump_model()["tree_info"]][0] == 1
    _assert_matches_lightgbm(mixed, x)


def test_best_iteration_is_respected_like_predict() -> None:
    x, y = _numeric_rows(3000, seed=8)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_leaves": 7, "learning_rate": 0.3},
        lgb.Dataset(x.iloc[:2000], label=y[:2000]),
        num_boost_round=200,
        valid_sets=[lgb.Dataset(x.iloc[2000:], label=y[2000:])],
        callbacks=[lgb.early_stopping(5, verbose=False)],
        keep_training_booster=True,  # keep the trees after the best iteration
    )
    assert 0 < booster.best_iteration < booster.current_iteration()
    _assert_matches_lightgbm(booster, x.iloc[2000:])


def test_lightgbm_backend_is_the_fallback_when_numba_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, y = _numeric_rows(1000, seed=9)
    booster = _train(x, y, rounds=5)
    reference = booster.predict(x, pred_contrib=True)

    forced = treeshap.Explainer(booster, backend="lightgbm")
    assert forced.backend == "lightgbm"
    np.testing.assert_array_equal(forced.contributions(x), reference)

    monkeypatch.setattr(treeshap, "_HAVE_NUMBA", False)
    auto = treeshap.Explainer(booster)
    assert auto.backend == "lightgbm"
    np.testing.assert_array_equal(auto.contributions(x), reference)
    with pytest.raises(RuntimeError, match="numba"):
        treeshap.Explainer(booster, backend="numba")


def test_auto_backend_falls_back_when_the_compiled_kernel_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, y = _numeric_rows(1000, seed=9)
    booster = _train(x, y, rounds=5)

    def broken_kernel(*args: Any) -> None:
        raise RuntimeError("LLVM is not available")

    for kernel in ("_shap_kernel", "_tree_keys"):
        monkeypatch.setattr(treeshap, kernel, broken_kernel)
    auto = treeshap.Explainer(booster)
    assert auto.backend == "lightgbm"
    np.testing.assert_array_equal(auto.contributions(x), booster.predict(x, pred_contrib=True))
    with pytest.raises(RuntimeError, match="LLVM"):
        treeshap.Explainer(booster, backend="numba")


def test_multiclass_falls_back_to_pred_contrib_layout() -> None:
    x, y = _numeric_rows(900, seed=10)
    booster = _train(
        x, y + (x["noise"] > 1).to_numpy(), rounds=3, objective="multiclass", num_class=3
    )
    explainer = treeshap.Explainer(booster)
    assert explainer.backend == "lightgbm"
    np.testing.assert_array_equal(explainer.contributions(x), booster.predict(x, pred_contrib=True))


def test_contributions_reuses_the_explainer_and_keeps_the_layout() -> None:
    x, y = _numeric_rows(1000, seed=11)
    booster = _train(x, y, rounds=5)
    first = treeshap.explainer_for(booster)
    assert treeshap.explainer_for(booster) is first
    out = treeshap.contributions(booster, x)
    assert out.shape == (len(x), x.shape[1] + 1)
    np.testing.assert_allclose(out, booster.predict(x, pred_contrib=True), atol=ATOL)
    assert treeshap.contributions(booster, x.iloc[:0]).shape == (0, x.shape[1] + 1)


def test_frame_with_wrong_columns_is_rejected_with_the_column_name() -> None:
    x, y = _numeric_rows(500, seed=12)
    booster = _train(x, y, rounds=2)
    with pytest.raises(treeshap.TreeShapError, match="csat_mean_90d.*model_frame"):
        treeshap.contributions(booster, x.drop(columns="csat_mean_90d"))
    with pytest.raises(treeshap.TreeShapError, match="noise.*dtype"):
        treeshap.contributions(booster, x.assign(noise="high"))


_CACHE_PATH = "from models.explain import treeshap; print(treeshap._shap_kernel._cache.cache_path)"


@pytest.mark.skipif(not treeshap._HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("numba_cache_dir", [None, "custom"])
def test_compiled_kernels_are_cached_in_the_user_cache_dir_or_numba_cache_dir(
    tmp_path, numba_cache_dir: str | None
) -> None:
    """The kernels' on-disk cache (reused by later processes) is under NUMBA_CACHE_DIR when set,
    else under $XDG_CACHE_HOME/churn-pipeline/numba, whatever the checkout's location."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    expected = tmp_path / "xdg" / "churn-pipeline" / "numba"
    if numba_cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(tmp_path / numba_cache_dir)
        expected = tmp_path / numba_cache_dir
    out = subprocess.run(
        [sys.executable, "-c", _CACHE_PATH], env=env, capture_output=True, text=True, check=True
    )
    path = Path(out.stdout.strip().splitlines()[-1])
    assert path.parent == expected
    assert path.is_dir()  # numba made it: writable, so the cache is kept there
