"""`churn preset FILE`: merge a preset (configs/*.yaml) into params.yaml and settings.yaml.

A preset names only what differs from the defaults, section by section; each key it gives
replaces that key's whole value (so `ingest.tables` or `evaluate.truth` are replaced, not mixed
with the old ones). Keys whose home is settings.yaml (`pipeline.config.SETTINGS_KEYS`: paths,
sources, MLflow names, resource limits) go there, the rest to params.yaml. Comments and the order
of both files are kept (ruamel round trip; a replaced key loses its old comment), the result is
validated against the typed config before anything is written, and each file is written
atomically.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from features.base.io import write_text
from features.base.params import ParamsError
from pipeline.config import SETTINGS_FILE_NAME, is_setting, merge_settings, params_from_dict

log = logging.getLogger(__name__)


def _yaml() -> YAML:
    y = YAML()  # round trip: keeps comments and key order
    y.preserve_quotes = True
    y.width = 100
    return y


def merge(
    params: dict[str, Any], settings: dict[str, Any], preset: dict[str, Any], where: str
) -> list[str]:
    """Replace [section][key] by every preset[section][key], in settings for a settings key and
    in params otherwise (removing it from the other file); return the keys replaced."""
    changed = []
    for section, values in preset.items():
        if not isinstance(values, dict):
            raise ParamsError(f"{where}: section {section!r} must be a mapping of keys to values")
        for key, value in values.items():
            to_settings = is_setting(f"{section}.{key}")
            home, other = (settings, params) if to_settings else (params, settings)
            target = home.setdefault(section, {})
            target[key] = value
            # the old value's comment tokens belong to its layout (a block list's line breaks):
            # kept with a new value, ruamel can glue the next key onto its line
            comments = getattr(target, "ca", None)
            if comments is not None:
                comments.items.pop(key, None)
            if isinstance(other.get(section), dict):
                other[section].pop(key, None)
                if not other[section]:
                    del other[section]
            changed.append(f"{section}.{key}")
    return changed


def apply_preset(preset_path: Path | str, params_path: Path | str = "params.yaml") -> list[str]:
    """Merge the preset into params.yaml and the settings.yaml beside it; return keys replaced."""
    preset_path, params_path = Path(preset_path), Path(params_path)
    settings_path = params_path.with_name(SETTINGS_FILE_NAME)
    for path in (preset_path, params_path):
        if not path.is_file():
            raise ParamsError(f"{path}: file not found")
    y = _yaml()
    params = y.load(params_path.read_text(encoding="utf-8")) or {}
    settings = (
        y.load(settings_path.read_text(encoding="utf-8")) or {} if settings_path.is_file() else {}
    )
    preset = y.load(preset_path.read_text(encoding="utf-8")) or {}
    changed = merge(params, settings, preset, str(preset_path))
    # validate the merged result before anything is written
    safe = YAML(typ="safe")
    plain = merge_settings(
        safe.load(_dump(y, params)) or {},
        safe.load(_dump(y, settings)) or {},
        str(params_path),
        str(settings_path),
    )
    params_from_dict(plain, where=f"{params_path} + {settings_path} + {preset_path}")
    write_text(params_path, _dump(y, params))
    if settings:
        write_text(settings_path, _dump(y, settings))
    log.info("%s, %s: %d keys from %s", params_path, settings_path, len(changed), preset_path)
    return changed


def _dump(y: YAML, data: Any) -> str:
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()
