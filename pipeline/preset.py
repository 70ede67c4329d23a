"""`churn preset FILE`: merge a params preset (configs/*.yaml) into params.yaml.

A preset names only what differs from the defaults, section by section; each key it gives
replaces that key's whole value in params.yaml (so `ingest.tables` or `evaluate.truth` are
replaced, not mixed with the old ones). Comments and the order of params.yaml are kept
(ruamel round trip), the result is validated against the typed config before it is written,
and it is written atomically.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from features.base.io import write_text
from features.base.params import ParamsError
from pipeline.config import params_from_dict

log = logging.getLogger(__name__)


def _yaml() -> YAML:
    y = YAML()  # round trip: keeps comments and key order
    y.preserve_quotes = True
    y.width = 100
    return y


def merge(params: dict[str, Any], preset: dict[str, Any], where: str) -> list[str]:
    """Replace params[section][key] by every preset[section][key]; return the keys replaced."""
    changed = []
    for section, values in preset.items():
        if not isinstance(values, dict):
            raise ParamsError(f"{where}: section {section!r} must be a mapping of keys to values")
        target = params.setdefault(section, {})
        for key, value in values.items():
            target[key] = value
            changed.append(f"{section}.{key}")
    return changed


def apply_preset(preset_path: Path | str, params_path: Path | str = "params.yaml") -> list[str]:
    """Merge the preset into params.yaml; return the keys it replaced."""
    preset_path, params_path = Path(preset_path), Path(params_path)
    for path in (preset_path, params_path):
        if not path.is_file():
            raise ParamsError(f"{path}: file not found")
    y = _yaml()
    params = y.load(params_path.read_text(encoding="utf-8")) or {}
    preset = y.load(preset_path.read_text(encoding="utf-8")) or {}
    changed = merge(params, preset, str(preset_path))
    # validate the merged result before anything is written
    plain = YAML(typ="safe").load(_dump(y, params))
    params_from_dict(plain, where=f"{params_path} + {preset_path}")
    write_text(params_path, _dump(y, params))
    log.info("%s: %d keys from %s", params_path, len(changed), preset_path)
    return changed


def _dump(y: YAML, data: Any) -> str:
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()
