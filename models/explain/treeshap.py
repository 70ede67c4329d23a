"""Exact TreeSHAP contributions of a LightGBM booster (log-odds), as fast as we can make them.

Interface (used by explain and score): `contributions(booster, x)` returns an array of shape
(n_rows, n_features + 1) laid out like LightGBM's `pred_contrib`: one column per booster
feature in `booster.feature_name()` order, the expected value (bias) last; each row sums to
the raw margin. `x` is the booster's input frame (`ChurnModel.model_frame`).

Why our own code: `shap.TreeExplainer` on a LightGBM booster just calls `pred_contrib`, which
runs the classic path-dependent TreeSHAP (O(leaves x depth^2) per tree and row). The fast
backend here computes the *same* values (same covers, same tree walk rules as LightGBM's C++
`Tree::TreeSHAP`) with the "decision pattern" precomputation of Fast TreeSHAP v2:

For a leaf with value v whose path splits on d distinct features, feature j has a cover ratio
z_j (product over its splits on the path of child count / parent count) and, for a row, a bit
o_j (1 if the row satisfies all of the path's conditions on j). The leaf's contribution is

    phi_j = v * (o_j - z_j) * sum_{S in others} |S|! (d-|S|-1)! / d! * prod_{S} o * prod_{rest} z

which depends on the row only through the bit pattern P = {j : o_j = 1}. With
H(Q) = sum_{S subset Q} w_d(|S|) prod_{Q minus S} z and Z = prod_{j not in P} z_j it is
    phi_j = v * (1 - z_j) * H(P - {j}) * Z    for j in P,
    phi_j = -v * H(P) * Z                      for j not in P,
so one table of 2^d values per leaf, built once per booster, turns each (row, leaf) into O(d)
work. Leaves with more distinct features than `max_table_bits` evaluate H directly (O(d^2)),
which keeps the table memory bounded for very deep trees.

The fast backend needs numba; without it (or for models it does not cover: multiclass, linear
trees) `contributions` falls back to LightGBM's own `pred_contrib`.

The compiled kernels are cached on disk and reused by every later process (compiling them takes
seconds; loading them a fraction of one): in `NUMBA_CACHE_DIR` when set, else in the user's cache
directory (`$XDG_CACHE_HOME` or `~/.cache`, then `churn-pipeline/numba`), so a fresh clone, a
read-only install and a CI job that keeps `~/.cache` all compile once. When that directory is not
writable numba falls back to its own places (`__pycache__` beside this file, its user cache).
numba keys the cache by this file's content hash, so an edit recompiles.
"""

from __future__ import annotations

import logging
import math
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

Backend = Literal["auto", "numba", "lightgbm"]

# LightGBM's kZeroThreshold (a float constant in the C++ code): |x| <= this counts as zero.
_ZERO_THRESHOLD = float(np.float32(1e-35))
_MISSING_TYPES = {"None": 0, "Zero": 1, "NaN": 2}
_ROW_BLOCK = 256  # rows per parallel work item: the block's X/out slices stay in cache per tree
_TREE_GROUP = 32  # trees whose rows' branch keys are held at once (8 bytes per row and tree)
_UNIQUE_BUDGET = 1 << 22  # float64 values of distinct-key contributions held at once (32 MB)
_MAX_KEY_NODES = 63  # a row's branch key is one int64 bit per internal node of the tree

try:  # numba is optional at runtime: without it we use LightGBM's pred_contrib
    import numba as _numba

    _HAVE_NUMBA = True
except ImportError:  # pragma: no cover - depends on the environment
    _numba = None
    _HAVE_NUMBA = False


class TreeShapError(ValueError):
    """The input rows do not fit the booster (columns, dtypes)."""


# --------------------------------------------------------------------------------------------
# Flattened ensemble: plain numpy arrays the compiled kernel can read
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ensemble:
    """Every tree of a booster as flat arrays: internal nodes, leaves, per-leaf pattern tables.

    Internal nodes of a tree are numbered in pre-order (a parent before its children); a child
    reference c >= 0 is an internal node of the same tree, c < 0 is the tree's leaf ~c.
    """

    n_features: int
    bias: float
    tree_node_start: np.ndarray  # int64 (T+1,): internal nodes of tree t are [start[t], start[t+1])
    tree_leaf_start: np.ndarray  # int64 (T+1,)
    node_feature: np.ndarray  # int64
    node_threshold: np.ndarray  # float64 (numerical splits)
    node_is_categorical: np.ndarray  # bool
    node_missing_type: np.ndarray  # int64: 0 None, 1 Zero, 2 NaN
    node_default_left: np.ndarray  # bool
    node_cat_start: np.ndarray  # int64 (n_nodes+1,): left-going category flags in cat_left
    cat_left: np.ndarray  # bool: cat_left[node_cat_start[i] + c] is True if category c goes left
    node_left: np.ndarray  # int64 child reference (see above)
    node_right: np.ndarray  # int64
    node_bit: np.ndarray  # int64: 1 << slot of the node's feature on the path from the root
    leaf_value: np.ndarray  # float64
    leaf_feat_start: np.ndarray  # int64 (n_leaves+1,): slots of leaf i are [start[i], start[i+1])
    slot_feature: np.ndarray  # int64: booster feature index of each slot
    slot_zero: np.ndarray  # float64: cover ratio z of each slot
    slot_coef: np.ndarray  # float64: (1 - z) / z (0 where z == 0; such leaves are not tabulated)
    leaf_table_start: np.ndarray  # int64: offset of the leaf's table in a_table, -1 = direct
    a_table: np.ndarray  # float64: A(P) = v * H(P) * prod_{j not in P} z_j for every pattern P
    shapley_weights: np.ndarray  # float64 (d_max+1, d_max): w_d(k) = k!(d-k-1)!/d!
    tree_feat_start: np.ndarray  # int64 (T+1,): distinct features of tree t are [start[t], ...)
    tree_feat: np.ndarray  # int64: booster feature index of each of a tree's distinct features
    slot_local: np.ndarray  # int64: index of each slot's feature among its tree's features
    max_tree_nodes: int  # internal nodes of the largest tree (<= 63: rows get decision keys)

    @property
    def table_bytes(self) -> int:
        return int(self.a_table.nbytes)


@dataclass
class _Builder:
    """Accumulates the flat arrays tree by tree."""

    node_feature: list[int]
    node_threshold: list[float]
    node_is_cat: list[bool]
    node_missing: list[int]
    node_default_left: list[bool]
    node_cat_start: list[int]
    cat_left: list[bool]
    node_left: list[int]
    node_right: list[int]
    node_bit: list[int]
    leaf_value: list[float]
    leaf_feat_start: list[int]
    slot_feature: list[int]
    slot_zero: list[float]

    @classmethod
    def empty(cls) -> _Builder:
        lists: dict[str, list] = {name: [] for name in cls.__dataclass_fields__}
        lists["node_cat_start"].append(0)
        lists["leaf_feat_start"].append(0)
        return cls(**lists)


def _count(node: dict) -> float:
    return float(node["internal_count"] if "split_index" in node else node["leaf_count"])


def _expected_value(structure: dict[str, Any]) -> float:
    """LightGBM's Tree::ExpectedValue: leaf values weighted by their training counts."""
    if "split_index" not in structure:
        return float(structure["leaf_value"])
    total = float(structure["internal_count"])
    value = 0.0
    stack = [structure]
    while stack:
        node = stack.pop()
        if "split_index" in node:
            stack.extend((node["right_child"], node["left_child"]))
        else:
            value += (float(node["leaf_count"]) / total) * float(node["leaf_value"])
    return value


def _add_node(b: _Builder, node: dict, bit: int) -> None:
    b.node_feature.append(int(node["split_feature"]))
    b.node_missing.append(_MISSING_TYPES[node["missing_type"]])
    b.node_default_left.append(bool(node["default_left"]))
    b.node_bit.append(bit)
    b.node_left.append(0)
    b.node_right.append(0)
    if node["decision_type"] == "==":
        cats = [int(c) for c in str(node["threshold"]).split("||")]
        flags = np.zeros(max(cats) + 1, dtype=bool)
        flags[cats] = True
        b.cat_left.extend(flags.tolist())
        b.node_is_cat.append(True)
        b.node_threshold.append(0.0)
    elif node["decision_type"] == "<=":
        b.node_is_cat.append(False)
        b.node_threshold.append(float(node["threshold"]))
    else:  # pragma: no cover - LightGBM has only these two split kinds
        raise NotImplementedError(f"unknown LightGBM decision type {node['decision_type']!r}")
    b.node_cat_start.append(len(b.cat_left))


def _add_tree(b: _Builder, root: dict) -> None:
    """Pre-order walk: number internal nodes, record each leaf's distinct path features and z."""
    if "split_index" not in root:
        return
    node_base = len(b.node_feature)
    leaf_base = len(b.leaf_value)
    # (node, parent index + which side, slot of each path feature, z of each slot)
    stack: list[tuple[dict, int, bool, dict[int, int], list[float]]] = [(root, -1, True, {}, [])]
    while stack:
        node, parent, is_left, slots, zeros = stack.pop()
        if "split_index" in node:
            ref = len(b.node_feature) - node_base
        else:
            ref = ~(len(b.leaf_value) - leaf_base)
        if parent >= 0:
            (b.node_left if is_left else b.node_right)[node_base + parent] = ref
        if "split_index" not in node:
            b.leaf_value.append(float(node["leaf_value"]))
            b.slot_feature.extend(slots)
            b.slot_zero.extend(zeros)
            b.leaf_feat_start.append(len(b.slot_feature))
            continue
        feature = int(node["split_feature"])
        slot = slots.get(feature, len(slots))
        _add_node(b, node, 1 << slot)
        for child, left in ((node["right_child"], False), (node["left_child"], True)):
            child_slots = {**slots, feature: slot}
            child_zeros = [*zeros, 1.0] if slot == len(zeros) else list(zeros)
            child_zeros[slot] *= _count(child) / _count(node)
            stack.append((child, ref, left, child_slots, child_zeros))


def _shapley_weights(d_max: int) -> np.ndarray:
    """w[d, k] = k! (d-k-1)! / d!: the Shapley weight of a coalition of size k among d players."""
    w = np.zeros((d_max + 1, max(d_max, 1)), dtype=np.float64)
    for d in range(1, d_max + 1):
        for k in range(d):
            w[d, k] = math.exp(math.lgamma(k + 1) + math.lgamma(d - k) - math.lgamma(d + 1))
    return w


def _flatten(booster: lgb.Booster, max_table_bits: int) -> _Ensemble:
    dump = booster.dump_model()
    if dump.get("num_tree_per_iteration", 1) != 1:
        raise NotImplementedError("multiclass boosters are not covered by the fast backend")
    b = _Builder.empty()
    tree_node_start, tree_leaf_start = [0], [0]
    bias = 0.0
    for tree in dump["tree_info"]:
        root = tree["tree_structure"]
        if tree.get("is_linear") or "leaf_coeff" in root:
            raise NotImplementedError("linear trees are not covered by the fast backend")
        bias += _expected_value(root)
        _add_tree(b, root)
        tree_node_start.append(len(b.node_feature))
        tree_leaf_start.append(len(b.leaf_value))

    i64 = np.int64
    leaf_feat_start = np.asarray(b.leaf_feat_start, dtype=i64)
    slot_zero = np.asarray(b.slot_zero, dtype=np.float64)
    leaf_d = np.diff(leaf_feat_start)
    d_max = int(leaf_d.max(initial=0))
    if d_max > 62:  # patterns are int64 bit sets
        raise NotImplementedError(f"a leaf path splits on {d_max} distinct features (max 62)")
    weights = _shapley_weights(d_max)
    slot_coef = np.divide(
        1.0 - slot_zero, slot_zero, out=np.zeros_like(slot_zero), where=slot_zero > 0
    )
    leaf_table_start = np.full(len(b.leaf_value), -1, dtype=i64)
    offset = 0
    for i, d in enumerate(leaf_d):
        has_zero_cover = bool((slot_zero[leaf_feat_start[i] : leaf_feat_start[i + 1]] == 0).any())
        if d <= max_table_bits and not has_zero_cover:
            leaf_table_start[i] = offset
            offset += 1 << int(d)
    leaf_value = np.asarray(b.leaf_value, dtype=np.float64)
    a_table = np.zeros(offset, dtype=np.float64)
    slot_feature = np.asarray(b.slot_feature, dtype=i64)
    tree_feat, slot_local, tree_feat_start = [], np.zeros(len(slot_feature), dtype=i64), [0]
    for t in range(len(tree_leaf_start) - 1):
        s0, s1 = leaf_feat_start[tree_leaf_start[t]], leaf_feat_start[tree_leaf_start[t + 1]]
        local: dict[int, int] = {}
        for k in range(s0, s1):
            slot_local[k] = local.setdefault(int(slot_feature[k]), len(local))
        tree_feat.extend(local)
        tree_feat_start.append(len(tree_feat))
    _fill_tables(a_table, leaf_table_start, leaf_feat_start, slot_zero, leaf_value, weights)
    return _Ensemble(
        n_features=int(dump["max_feature_idx"]) + 1,
        bias=bias,
        tree_node_start=np.asarray(tree_node_start, dtype=i64),
        tree_leaf_start=np.asarray(tree_leaf_start, dtype=i64),
        node_feature=np.asarray(b.node_feature, dtype=i64),
        node_threshold=np.asarray(b.node_threshold, dtype=np.float64),
        node_is_categorical=np.asarray(b.node_is_cat, dtype=bool),
        node_missing_type=np.asarray(b.node_missing, dtype=i64),
        node_default_left=np.asarray(b.node_default_left, dtype=bool),
        node_cat_start=np.asarray(b.node_cat_start, dtype=i64),
        cat_left=np.asarray(b.cat_left, dtype=bool),
        node_left=np.asarray(b.node_left, dtype=i64),
        node_right=np.asarray(b.node_right, dtype=i64),
        node_bit=np.asarray(b.node_bit, dtype=i64),
        leaf_value=leaf_value,
        leaf_feat_start=leaf_feat_start,
        slot_feature=slot_feature,
        slot_zero=slot_zero,
        slot_coef=slot_coef,
        leaf_table_start=leaf_table_start,
        a_table=a_table,
        shapley_weights=weights,
        tree_feat_start=np.asarray(tree_feat_start, dtype=i64),
        tree_feat=np.asarray(tree_feat, dtype=i64),
        slot_local=slot_local,
        max_tree_nodes=int(np.diff(tree_node_start).max(initial=0)),
    )


# --------------------------------------------------------------------------------------------
# Compiled kernels (numba); plain Python definitions so that the module imports without numba
# --------------------------------------------------------------------------------------------


def _fill_tables_impl(
    a_table: np.ndarray,
    leaf_table_start: np.ndarray,
    leaf_feat_start: np.ndarray,
    zeros: np.ndarray,
    leaf_value: np.ndarray,
    weights: np.ndarray,
) -> None:
    """A(P) = v * H(P) * prod_{j not in P} z_j of each tabulated leaf, for all 2^d patterns P.

    H(P) = sum_k w_d(k) [t^k] prod_{j in P} (z_j + t); the polynomials of all patterns are built
    by adding one (lowest) bit to an already computed pattern.
    """
    for leaf in range(leaf_table_start.shape[0]):
        start = leaf_table_start[leaf]
        if start < 0:
            continue
        f0 = leaf_feat_start[leaf]
        d = leaf_feat_start[leaf + 1] - f0
        n_masks = 1 << d
        poly = np.zeros((n_masks, d + 1))
        absent = np.ones(n_masks)  # prod of z over the slots NOT in the mask
        poly[0, 0] = 1.0
        for j in range(d):
            absent[0] *= zeros[f0 + j]
        for mask in range(1, n_masks):
            low = 0
            while not (mask >> low) & 1:
                low += 1
            prev = mask ^ (1 << low)
            z = zeros[f0 + low]
            poly[mask, 0] = poly[prev, 0] * z
            for k in range(1, d + 1):
                poly[mask, k] = poly[prev, k] * z + poly[prev, k - 1]
            absent[mask] = 1.0
            for j in range(d):
                if not (mask >> j) & 1:
                    absent[mask] *= zeros[f0 + j]
        for mask in range(n_masks):
            h = 0.0
            for k in range(d):
                h += weights[d, k] * poly[mask, k]
            a_table[start + mask] = leaf_value[leaf] * h * absent[mask]


def _leaf_direct(
    out_row: np.ndarray,
    value: float,
    f0: int,
    d: int,
    pattern: int,
    slot_feature: np.ndarray,
    zeros: np.ndarray,
    weights: np.ndarray,
) -> None:
    """One leaf's contributions without a table, O(d^2): for deep paths or zero covers."""
    scale = value
    poly = np.zeros(d + 1)
    poly[0] = 1.0
    m = 0
    for j in range(d):
        z = zeros[f0 + j]
        if (pattern >> j) & 1:
            m += 1
            for k in range(m, 0, -1):
                poly[k] = poly[k] * z + poly[k - 1]
            poly[0] *= z
        else:
            scale *= z
    if scale == 0.0:
        return
    h_all = 0.0
    for k in range(min(m, d - 1) + 1):
        h_all += weights[d, k] * poly[k]
    for j in range(d):
        feature = slot_feature[f0 + j]
        if not (pattern >> j) & 1:
            out_row[feature] -= scale * h_all
            continue
        # H(P - {j}): divide (z_j + t) out of the polynomial, top down (stable for z_j <= 1)
        z = zeros[f0 + j]
        h = 0.0
        q = 0.0
        for k in range(m, 0, -1):
            q = poly[k] - z * q if k < m else poly[m]
            h += weights[d, k - 1] * q
        out_row[feature] += scale * (1.0 - z) * h


def _go_left(
    value: float,
    node: int,
    is_cat: np.ndarray,
    threshold: np.ndarray,
    missing_type: np.ndarray,
    default_left: np.ndarray,
    cat_start: np.ndarray,
    cat_left: np.ndarray,
) -> bool:
    """LightGBM's Tree::NumericalDecision / CategoricalDecision on a double feature value."""
    if is_cat[node]:
        if np.isnan(value):
            return False
        if value <= -1.0 or value >= 2147483647.0:  # int cast < 0, or out of any bitset
            return False
        category = int(value)  # truncates toward zero, like static_cast<int>
        n_flags = cat_start[node + 1] - cat_start[node]
        if category >= n_flags:
            return False
        return cat_left[cat_start[node] + category]
    mtype = missing_type[node]
    if np.isnan(value):
        if mtype == 2:
            return default_left[node]
        value = 0.0
    if mtype == 1 and -_ZERO_THRESHOLD <= value <= _ZERO_THRESHOLD:
        return default_left[node]
    return value <= threshold[node]


def _shap_kernel_impl(
    x: np.ndarray,
    out: np.ndarray,
    tree_node_start: np.ndarray,
    tree_leaf_start: np.ndarray,
    node_feature: np.ndarray,
    node_threshold: np.ndarray,
    node_is_cat: np.ndarray,
    node_missing: np.ndarray,
    node_default_left: np.ndarray,
    node_cat_start: np.ndarray,
    cat_left: np.ndarray,
    node_left: np.ndarray,
    node_right: np.ndarray,
    node_bit: np.ndarray,
    leaf_value: np.ndarray,
    leaf_feat_start: np.ndarray,
    slot_feature: np.ndarray,
    slot_zero: np.ndarray,
    slot_coef: np.ndarray,
    leaf_table_start: np.ndarray,
    a_table: np.ndarray,
    weights: np.ndarray,
    block: int,
) -> None:
    """Add every tree's TreeSHAP contributions of every row of x into out (rows x features).

    Per row and tree: one pass over the internal nodes (pre-order) marks, for every node and
    leaf, which path features the row fails; each leaf then reads its pattern's table entries.
    """
    n_rows = x.shape[0]
    n_trees = tree_node_start.shape[0] - 1
    max_nodes = 1
    max_leaves = 1
    for t in range(n_trees):
        max_nodes = max(max_nodes, tree_node_start[t + 1] - tree_node_start[t])
        max_leaves = max(max_leaves, tree_leaf_start[t + 1] - tree_leaf_start[t])
    n_blocks = (n_rows + block - 1) // block
    for b in _prange(n_blocks):
        r0 = b * block
        r1 = min(n_rows, r0 + block)
        fail_node = np.zeros(max_nodes, dtype=np.int64)
        fail_leaf = np.zeros(max_leaves, dtype=np.int64)
        for t in range(n_trees):
            n0 = tree_node_start[t]
            n1 = tree_node_start[t + 1]
            if n1 == n0:  # single-leaf tree: only the bias
                continue
            l0 = tree_leaf_start[t]
            for r in range(r0, r1):
                fail_node[0] = 0
                for i in range(n1 - n0):
                    node = n0 + i
                    left = _go_left(
                        x[r, node_feature[node]],
                        node,
                        node_is_cat,
                        node_threshold,
                        node_missing,
                        node_default_left,
                        node_cat_start,
                        cat_left,
                    )
                    failed = fail_node[i]
                    fail_l = failed if left else failed | node_bit[node]
                    fail_r = failed | node_bit[node] if left else failed
                    child = node_left[node]
                    if child >= 0:
                        fail_node[child] = fail_l
                    else:
                        fail_leaf[~child] = fail_l
                    child = node_right[node]
                    if child >= 0:
                        fail_node[child] = fail_r
                    else:
                        fail_leaf[~child] = fail_r
                for k in range(tree_leaf_start[t + 1] - l0):
                    leaf = l0 + k
                    f0 = leaf_feat_start[leaf]
                    d = leaf_feat_start[leaf + 1] - f0
                    pattern = ((1 << d) - 1) & ~fail_leaf[k]
                    tab = leaf_table_start[leaf]
                    if tab < 0:
                        _leaf_direct(
                            out[r],
                            leaf_value[leaf],
                            f0,
                            d,
                            pattern,
                            slot_feature,
                            slot_zero,
                            weights,
                        )
                        continue
                    a_all = a_table[tab + pattern]
                    for j in range(d):
                        if (pattern >> j) & 1:
                            a_j = a_table[tab + (pattern ^ (1 << j))]
                            out[r, slot_feature[f0 + j]] += a_j * slot_coef[f0 + j]
                        else:
                            out[r, slot_feature[f0 + j]] -= a_all


# Rows that take the same branch at every internal node of a tree get the same contributions from
# it. The deduplicating backend computes, per tree, each distinct branch pattern's contributions
# once (to the tree's own features) and adds them to every row with that pattern. On the default
# model and 100 k customers about 30 % of the (row, tree) pairs are distinct.


def _tree_keys_impl(
    x: np.ndarray,
    keys: np.ndarray,
    t0: int,
    tree_node_start: np.ndarray,
    node_feature: np.ndarray,
    node_threshold: np.ndarray,
    node_is_cat: np.ndarray,
    node_missing: np.ndarray,
    node_default_left: np.ndarray,
    node_cat_start: np.ndarray,
    cat_left: np.ndarray,
    block: int,
) -> None:
    """keys[g, r]: bit i set when row r goes left at internal node i of tree t0 + g.

    A block of rows is transposed first, so that each numerical node compares one contiguous
    column without branches (`_go_left`'s rules as selects); categorical nodes use `_go_left`.
    """
    n_rows = x.shape[0]
    n_blocks = (n_rows + block - 1) // block
    for b in _prange(n_blocks):
        r0 = b * block
        r1 = min(n_rows, r0 + block)
        width = r1 - r0
        xt = np.empty((x.shape[1], width))
        for r in range(width):
            for f in range(x.shape[1]):
                xt[f, r] = x[r0 + r, f]
        key = np.empty(width, dtype=np.int64)
        for g in range(keys.shape[0]):
            n0 = tree_node_start[t0 + g]
            n1 = tree_node_start[t0 + g + 1]
            key[:] = 0
            for i in range(n1 - n0):
                node = n0 + i
                column = xt[node_feature[node]]
                bit = np.int64(1) << i
                if node_is_cat[node]:
                    for r in range(width):
                        if _go_left(
                            column[r],
                            node,
                            node_is_cat,
                            node_threshold,
                            node_missing,
                            node_default_left,
                            node_cat_start,
                            cat_left,
                        ):
                            key[r] |= bit
                    continue
                threshold = node_threshold[node]
                mtype = node_missing[node]
                default_left = node_default_left[node]
                if mtype == 1:  # Zero: NaN and |v| <= kZeroThreshold take the default side
                    for r in range(width):
                        v = column[r]
                        zero = (v != v) | (abs(v) <= _ZERO_THRESHOLD)
                        left = (zero & default_left) | (~zero & (v <= threshold))
                        key[r] |= np.int64(left) << i
                else:  # NaN: NaN takes the default side; None: NaN counts as 0.0
                    nan_left = default_left if mtype == 2 else 0.0 <= threshold
                    for r in range(width):
                        v = column[r]
                        left = (v <= threshold) | ((v != v) & nan_left)
                        key[r] |= np.int64(left) << i
            for r in range(width):
                keys[g, r0 + r] = key[r]


def _dedupe_impl(keys: np.ndarray, uid: np.ndarray, n_unique: np.ndarray, bits: int) -> None:
    """Per tree g: uid[g, r] = the index of row r's key among the tree's distinct keys (in order
    of first occurrence); the distinct keys then replace keys[g, :n_unique[g]]."""
    n_rows = keys.shape[1]
    size = 1 << bits
    mask = size - 1
    for g in _prange(keys.shape[0]):
        table_key = np.full(size, -1, dtype=np.int64)  # keys are >= 0 (at most 63 bits)
        table_id = np.zeros(size, dtype=np.int64)
        distinct = np.empty(n_rows, dtype=np.int64)
        u = 0
        for r in range(n_rows):
            key = keys[g, r]
            h = ((key * -7046029254386353131) >> (64 - bits)) & mask  # Fibonacci hashing
            while True:
                found = table_key[h]
                if found == key:
                    uid[g, r] = table_id[h]
                    break
                if found == -1:
                    table_key[h] = key
                    table_id[h] = u
                    distinct[u] = key
                    uid[g, r] = u
                    u += 1
                    break
                h = (h + 1) & mask
        n_unique[g] = u
        for k in range(u):
            keys[g, k] = distinct[k]


def _unique_contributions_impl(
    keys: np.ndarray,
    n_unique: np.ndarray,
    t0: int,
    g0: int,
    uc: np.ndarray,
    uc_start: np.ndarray,
    tree_node_start: np.ndarray,
    tree_leaf_start: np.ndarray,
    tree_feat_start: np.ndarray,
    node_bit: np.ndarray,
    node_left: np.ndarray,
    node_right: np.ndarray,
    leaf_value: np.ndarray,
    leaf_feat_start: np.ndarray,
    slot_local: np.ndarray,
    slot_zero: np.ndarray,
    slot_coef: np.ndarray,
    leaf_table_start: np.ndarray,
    a_table: np.ndarray,
    weights: np.ndarray,
) -> None:
    """For trees t0 + g0 + i (i < len(uc_start) - 1), each distinct key's contributions to the
    tree's features: uc[uc_start[i] + u * m + k] for the tree's k-th feature (uc zeroed)."""
    for i in _prange(uc_start.shape[0] - 1):
        g = g0 + i
        t = t0 + g
        n0 = tree_node_start[t]
        n1 = tree_node_start[t + 1]
        if n1 == n0:
            continue
        l0 = tree_leaf_start[t]
        n_leaves = tree_leaf_start[t + 1] - l0
        m = tree_feat_start[t + 1] - tree_feat_start[t]
        fail_node = np.zeros(n1 - n0, dtype=np.int64)
        fail_leaf = np.zeros(n_leaves, dtype=np.int64)
        for u in range(n_unique[g]):
            key = keys[g, u]
            base = uc_start[i] + u * m
            row = uc[base : base + m]
            fail_node[0] = 0
            for j in range(n1 - n0):
                node = n0 + j
                failed = fail_node[j]
                if (key >> j) & 1:
                    fail_l = failed
                    fail_r = failed | node_bit[node]
                else:
                    fail_l = failed | node_bit[node]
                    fail_r = failed
                child = node_left[node]
                if child >= 0:
                    fail_node[child] = fail_l
                else:
                    fail_leaf[~child] = fail_l
                child = node_right[node]
                if child >= 0:
                    fail_node[child] = fail_r
                else:
                    fail_leaf[~child] = fail_r
            for k in range(n_leaves):
                leaf = l0 + k
                f0 = leaf_feat_start[leaf]
                d = leaf_feat_start[leaf + 1] - f0
                pattern = ((1 << d) - 1) & ~fail_leaf[k]
                tab = leaf_table_start[leaf]
                if tab < 0:
                    _leaf_direct(
                        row, leaf_value[leaf], f0, d, pattern, slot_local, slot_zero, weights
                    )
                    continue
                a_all = a_table[tab + pattern]
                for s in range(d):
                    if (pattern >> s) & 1:
                        row[slot_local[f0 + s]] += (
                            a_table[tab + (pattern ^ (1 << s))] * slot_coef[f0 + s]
                        )
                    else:
                        row[slot_local[f0 + s]] -= a_all


def _scatter_impl(
    out: np.ndarray,
    uid: np.ndarray,
    uc: np.ndarray,
    uc_start: np.ndarray,
    t0: int,
    g0: int,
    tree_feat_start: np.ndarray,
    tree_feat: np.ndarray,
    block: int,
) -> None:
    """Add the contributions of trees t0 + g0 + i, in tree order, to every row of out."""
    n_rows = out.shape[0]
    n_blocks = (n_rows + block - 1) // block
    for b in _prange(n_blocks):
        r0 = b * block
        r1 = min(n_rows, r0 + block)
        for i in range(uc_start.shape[0] - 1):
            g = g0 + i
            t = t0 + g
            f0 = tree_feat_start[t]
            m = tree_feat_start[t + 1] - f0
            if m == 0:
                continue
            for r in range(r0, r1):
                base = uc_start[i] + uid[g, r] * m
                for k in range(m):
                    out[r, tree_feat[f0 + k]] += uc[base + k]


def kernel_cache_dir() -> Path:
    """Where the compiled kernels are kept across processes: `NUMBA_CACHE_DIR` when set, else
    `$XDG_CACHE_HOME/churn-pipeline/numba` (default `~/.cache/churn-pipeline/numba`)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "churn-pipeline" / "numba"


if _HAVE_NUMBA:
    _prange = _numba.prange
    # numba picks a function's cache directory when it is decorated, from its config: point it
    # at ours for these kernels only (the process' other numba users keep their setting).
    _configured = _numba.config.CACHE_DIR
    _numba.config.CACHE_DIR = str(kernel_cache_dir())
    try:
        _leaf_direct = _numba.njit(cache=True, nogil=True)(_leaf_direct)
        _go_left = _numba.njit(cache=True, nogil=True, inline="always")(_go_left)
        _fill_tables = _numba.njit(cache=True, nogil=True)(_fill_tables_impl)
        _shap_kernel = _numba.njit(cache=True, nogil=True, parallel=True)(_shap_kernel_impl)
        _tree_keys = _numba.njit(cache=True, nogil=True, parallel=True)(_tree_keys_impl)
        _dedupe = _numba.njit(cache=True, nogil=True, parallel=True)(_dedupe_impl)
        _unique_contributions = _numba.njit(cache=True, nogil=True, parallel=True)(
            _unique_contributions_impl
        )
        _scatter = _numba.njit(cache=True, nogil=True, parallel=True)(_scatter_impl)
    finally:
        _numba.config.CACHE_DIR = _configured
else:  # pragma: no cover - depends on the environment
    _prange = range
    _fill_tables = _fill_tables_impl
    _shap_kernel = _tree_keys = _dedupe = _unique_contributions = _scatter = None


# --------------------------------------------------------------------------------------------
# Input rows → the float64 matrix LightGBM itself predicts on
# --------------------------------------------------------------------------------------------


def as_matrix(booster: lgb.Booster, x: pd.DataFrame | np.ndarray) -> np.ndarray:
    """The booster's numeric view of x: columns in feature order, categoricals as training codes
    (what LightGBM's own predict converts a frame to; `booster.predict` of it gives the same)."""
    names = booster.feature_name()
    if not isinstance(x, pd.DataFrame):
        arr = np.ascontiguousarray(x, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != len(names):
            raise TreeShapError(
                f"rows have shape {arr.shape}, the booster expects (n, {len(names)}) columns "
                "in booster.feature_name() order; pass ChurnModel.model_frame(frame)."
            )
        return arr
    if list(x.columns) != names:
        missing = [c for c in names if c not in x.columns]
        extra = [c for c in x.columns if c not in names]
        raise TreeShapError(
            f"input frame columns do not match the booster's features (missing {missing[:5]}, "
            f"unexpected {extra[:5]}, or a different order); pass ChurnModel.model_frame(frame)."
        )
    train_levels = list(getattr(booster, "pandas_categorical", None) or [])
    cat_columns = [c for c in x.columns if isinstance(x[c].dtype, pd.CategoricalDtype)]
    if len(cat_columns) != len(train_levels):
        raise TreeShapError(
            f"input frame has {len(cat_columns)} category column(s) {cat_columns[:5]}, the booster "
            f"was trained with {len(train_levels)}; pass ChurnModel.model_frame(frame)."
        )
    out = np.empty((len(x), len(names)), dtype=np.float64)
    cat_index = {c: i for i, c in enumerate(cat_columns)}
    for j, col in enumerate(names):
        series = x[col]
        if col in cat_index:
            levels = train_levels[cat_index[col]]
            if list(series.cat.categories) != list(levels):  # same recoding as LightGBM's predict
                series = series.cat.set_categories(levels)
            codes = series.cat.codes.to_numpy().astype(np.float64)
            codes[codes < 0] = np.nan
            out[:, j] = codes
        else:
            try:
                out[:, j] = series.to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError) as err:
                example = series.dropna().iloc[0] if series.notna().any() else None
                raise TreeShapError(
                    f"input column {col!r} has dtype {series.dtype} (example {example!r}): the "
                    "booster needs numbers or pandas categories: use ChurnModel.model_frame(frame)."
                ) from err
    return out


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


class Explainer:
    """Exact TreeSHAP for one booster; build once, call `.contributions(x)` on many chunks.

    `backend="auto"` uses the compiled table backend ("numba") when numba is importable and the
    model is covered (binary/regression, no linear trees), else LightGBM's pred_contrib
    ("lightgbm"). `max_table_bits` caps the per-leaf table at 2^bits values (8 bytes each);
    leaves with more distinct path features are evaluated directly instead. `dedupe` computes
    each tree's contributions once per distinct branch pattern among the rows (trees of at most
    63 internal nodes; else, or with False, every row and tree on its own); both give the same
    values up to the order of float additions (~1e-16).
    """

    def __init__(
        self,
        booster: lgb.Booster,
        backend: Backend = "auto",
        max_table_bits: int = 16,
        dedupe: bool = True,
    ) -> None:
        if backend not in ("auto", "numba", "lightgbm"):
            raise ValueError(f"unknown TreeSHAP backend {backend!r}; use auto, numba or lightgbm")
        self.booster = booster
        self.dedupe = dedupe
        self.backend: str = "lightgbm"
        self._ensemble: _Ensemble | None = None
        if backend == "lightgbm":
            return
        if not _HAVE_NUMBA:
            if backend == "numba":
                raise RuntimeError("TreeSHAP backend 'numba' requested but numba is not installed")
            log.warning("numba is not installed: TreeSHAP falls back to LightGBM pred_contrib")
            return
        try:
            self._ensemble = _flatten(booster, max_table_bits)
            # compile (or load numba's on-disk cache) now, so a broken toolchain shows up here
            self._run_kernel(np.zeros((1, self._ensemble.n_features)))
        except Exception as err:  # noqa: BLE001 - any failure of the fast path means: fall back
            if backend == "numba":
                raise
            self._ensemble = None
            log.warning("TreeSHAP falls back to LightGBM pred_contrib: %s", err)
            return
        self.backend = "numba"
        log.debug("TreeSHAP tables: %.1f MB", self._ensemble.table_bytes / 1e6)

    @property
    def expected_value(self) -> float:
        """The bias column: the model's average raw score over the training rows."""
        if self._ensemble is not None:
            return self._ensemble.bias
        return float(self.contributions(np.zeros((1, self.booster.num_feature())))[0, -1])

    def contributions(self, x: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Per-row SHAP values (log-odds) and the bias, in LightGBM's pred_contrib layout."""
        if self._ensemble is None:
            return np.asarray(self.booster.predict(x, pred_contrib=True), dtype=np.float64)
        return self._run_kernel(as_matrix(self.booster, x))

    def _run_kernel(self, matrix: np.ndarray) -> np.ndarray:
        e = self._ensemble
        assert e is not None
        out = np.zeros((matrix.shape[0], e.n_features + 1), dtype=np.float64)
        if matrix.shape[0] == 0:
            return out
        if self.dedupe and e.max_tree_nodes <= _MAX_KEY_NODES:
            _run_deduplicated(e, matrix, out)
        else:
            _run_per_row(e, matrix, out)
        out[:, -1] = e.bias
        return out


def _run_per_row(e: _Ensemble, matrix: np.ndarray, out: np.ndarray) -> None:
    """Every (row, tree): the branch pass, then every leaf's pattern-table entries."""
    _shap_kernel(
        matrix,
        out,
        e.tree_node_start,
        e.tree_leaf_start,
        e.node_feature,
        e.node_threshold,
        e.node_is_categorical,
        e.node_missing_type,
        e.node_default_left,
        e.node_cat_start,
        e.cat_left,
        e.node_left,
        e.node_right,
        e.node_bit,
        e.leaf_value,
        e.leaf_feat_start,
        e.slot_feature,
        e.slot_zero,
        e.slot_coef,
        e.leaf_table_start,
        e.a_table,
        e.shapley_weights,
        _ROW_BLOCK,
    )


def _run_deduplicated(e: _Ensemble, matrix: np.ndarray, out: np.ndarray) -> None:
    """Per group of trees: every row's branch key per tree, the distinct keys per tree, each
    distinct key's contributions once, then added to the rows (tree order, as the per-row kernel).

    Memory: 12 bytes per row and tree of the group, the hash tables, and at most
    `_UNIQUE_BUDGET` contributions (or one tree's, if more).
    """
    n_rows = matrix.shape[0]
    n_trees = len(e.tree_node_start) - 1
    bits = max(4, int(2 * n_rows - 1).bit_length())  # hash table of >= 2x the rows
    n_feat = np.diff(e.tree_feat_start)
    for t0 in range(0, n_trees, _TREE_GROUP):
        t1 = min(n_trees, t0 + _TREE_GROUP)
        keys = np.empty((t1 - t0, n_rows), dtype=np.int64)
        _tree_keys(
            matrix,
            keys,
            t0,
            e.tree_node_start,
            e.node_feature,
            e.node_threshold,
            e.node_is_categorical,
            e.node_missing_type,
            e.node_default_left,
            e.node_cat_start,
            e.cat_left,
            _ROW_BLOCK,
        )
        uid = np.empty((t1 - t0, n_rows), dtype=np.int32)
        n_unique = np.zeros(t1 - t0, dtype=np.int64)
        _dedupe(keys, uid, n_unique, bits)
        sizes = n_unique * n_feat[t0:t1]
        g0 = 0
        while g0 < t1 - t0:  # trees whose distinct contributions fit the budget together
            g1 = g0 + 1
            while g1 < t1 - t0 and sizes[g0 : g1 + 1].sum() <= _UNIQUE_BUDGET:
                g1 += 1
            uc_start = np.concatenate([[0], np.cumsum(sizes[g0:g1])]).astype(np.int64)
            uc = np.zeros(int(uc_start[-1]), dtype=np.float64)
            _unique_contributions(
                keys,
                n_unique,
                t0,
                g0,
                uc,
                uc_start,
                e.tree_node_start,
                e.tree_leaf_start,
                e.tree_feat_start,
                e.node_bit,
                e.node_left,
                e.node_right,
                e.leaf_value,
                e.leaf_feat_start,
                e.slot_local,
                e.slot_zero,
                e.slot_coef,
                e.leaf_table_start,
                e.a_table,
                e.shapley_weights,
            )
            _scatter(out, uid, uc, uc_start, t0, g0, e.tree_feat_start, e.tree_feat, _ROW_BLOCK)
            g0 = g1


# Explainers of recently used boosters, so that chunked callers build the tables once. Keyed by
# the booster object (weakly: a dropped booster frees its tables) and its iteration count, so a
# booster trained further gets new tables.
_CACHE: weakref.WeakKeyDictionary[lgb.Booster, tuple[tuple[int, int, str], Explainer]] = (
    weakref.WeakKeyDictionary()
)


def explainer_for(booster: lgb.Booster, backend: Backend = "auto") -> Explainer:
    """The cached Explainer of this booster (built on first use)."""
    key = (booster.current_iteration(), booster.best_iteration, backend)
    cached = _CACHE.get(booster)
    if cached is not None and cached[0] == key:
        return cached[1]
    explainer = Explainer(booster, backend=backend)
    _CACHE[booster] = (key, explainer)
    return explainer


def contributions(booster: lgb.Booster, x: pd.DataFrame, backend: Backend = "auto") -> np.ndarray:
    """Per-row SHAP values (log-odds) and the bias, in LightGBM's pred_contrib layout."""
    return explainer_for(booster, backend).contributions(x)
