"""The driver report opens in headless Chromium: no broken image, no console error, offline.

Chromium and chromedriver come from the system packages (`make browser`, a prerequisite of
`make test`). The test fails, never skips, when they are missing: the acceptance criterion is
that the report is checked in a real browser.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "models"))
from test_explain import ALERTS, REPR_PATTERNS, build_project  # noqa: E402

from helpers import churn

CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
SECTION_IDS = (
    "money",
    "kpis",
    "importance",
    "beeswarm",
    "dependence",
    "groups",
    "segments",
    "touchpoints",
    "alerts",
    "leakage",
    "glossary",
)

# Every attribute value and stylesheet rule that points at the network.
EXTERNAL_REFERENCES_JS = r"""
const found = [];
for (const el of document.querySelectorAll('*')) {
  for (const attr of el.attributes) {
    if (/(^|\s|url\()\s*['"]?(https?:)?\/\//i.test(attr.value)) {
      found.push(el.tagName + '@' + attr.name + '=' + attr.value.slice(0, 80));
    }
  }
}
for (const sheet of document.styleSheets) {
  for (const rule of sheet.cssRules) {
    if (/url\(\s*['"]?(https?:)?\/\//i.test(rule.cssText)) {
      found.push(rule.cssText.slice(0, 80));
    }
  }
}
for (const entry of performance.getEntriesByType('resource')) {
  if (!entry.name.startsWith('data:')) { found.push('loaded ' + entry.name); }
}
return found;
"""

IMAGES_JS = """
return Array.from(document.images).map(
  img => ({alt: img.alt, complete: img.complete, width: img.naturalWidth,
           data: img.src.startsWith('data:image/png;base64,')}));
"""


def require_chromium() -> None:
    """Fail (never skip) when the browser is not installed, saying how to install it."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).exists() or shutil.which(p))]
    if missing:
        pytest.fail(
            f"{missing} not found: install the browser with `make browser` (Debian packages "
            "chromium and chromium-driver); `make test` does it for you."
        )


def open_chromium(user_data_dir: Path) -> Any:
    """A headless Chromium driven by the system chromedriver; never downloads anything."""
    require_chromium()
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must not go online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def inspect_report(html_path: Path, screenshot: Path, user_data_dir: Path) -> dict[str, Any]:
    """Open the page via file://, collect images, console log, external references, sections,
    and save a full-page screenshot."""
    driver = open_chromium(user_data_dir)
    try:
        driver.set_page_load_timeout(30)
        driver.get(html_path.resolve().as_uri())
        found = {
            "images": driver.execute_script(IMAGES_JS),
            "external": driver.execute_script(EXTERNAL_REFERENCES_JS),
            "sections": driver.execute_script(
                "return Array.from(document.querySelectorAll('section[id] h2'))"
                ".map(h => [h.parentElement.id, h.textContent]);"
            ),
            "title": driver.title,
            "text": driver.execute_script("return document.body.innerText;"),
            "glossary_terms": driver.execute_script(
                "return Array.from(document.querySelectorAll('#glossary dt'))"
                ".map(dt => dt.textContent);"
            ),
            "console": driver.get_log("browser"),
        }
        height = driver.execute_script("return document.documentElement.scrollHeight;")
        driver.set_window_size(1280, min(int(height) + 40, 16000))
        driver.save_screenshot(str(screenshot))
        found["console"] += driver.get_log("browser")
        return found
    finally:
        driver.quit()


def test_driver_report_opens_in_headless_chromium(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_chromium()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    build_project(tmp_path, alerts=ALERTS)
    assert churn("explain") == 0
    page = tmp_path / "reports/drivers/index.html"

    shot = tmp_path / "drivers_screenshot.png"
    found = inspect_report(page, shot, tmp_path / "chromium-profile")

    assert len(found["images"]) >= 8, found["images"]  # 5 charts + 3 dependence plots
    broken = [i for i in found["images"] if not (i["complete"] and i["width"] > 0 and i["data"])]
    assert not broken, f"broken or non-embedded images: {broken}"
    severe = [e for e in found["console"] if e.get("level") == "SEVERE"]
    assert not severe, f"console errors: {severe}"
    assert not found["external"], f"references to the network: {found['external']}"
    assert [s[0] for s in found["sections"]] == list(SECTION_IDS)
    assert "Churn drivers" in found["title"]
    # what a reader sees: money at risk, percentage points, a glossary, no repr/nan strings
    text = found["text"]
    assert "Money at risk at the test cutoff:" in text and " pp" in text
    assert {"SHAP value", "Lift", "PR AUC", "MRR", "NRR", "CLV"} <= set(found["glossary_terms"])
    bad = REPR_PATTERNS.search(text)
    assert not bad, (
        f"repr/missing marker in the page text: {text[bad.start() - 80 : bad.end() + 80]!r}"
    )
    assert shot.stat().st_size > 10_000
