"""`make lab` in a real browser: JupyterLab from the project's environment, a notebook run in headless
Chromium under the smoke profile, no cell showing an error, the progress bar rendered as a widget.

What papermill cannot see breaks here: a tqdm widget that shows "Error displaying widget", a missing
lab extension, a kernel that is not the project's. Needs Chromium and its driver (Debian: `chromium`,
`chromium-driver`) and selenium; without them the test is skipped with one line saying so.
Run by `make test-browser`, not by `make test`.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = "02_contrastive.ipynb"  # trains (a tqdm bar), plots and checks answers in a minute under smoke
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("no Chromium and chromedriver here (Debian: apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on a copy of one notebook (its autosave must not touch the repository's), smoke profile."""
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(REPO / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    # render every cell, not only those in view, so that every output can be inspected
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port, token = _free_port(), "hybridlib-browser-test"
    env = {**os.environ, "HYBRIDLIB_PROFILE": "smoke", "HYBRIDLIB_RUNS": str(tmp_path / "runs"),
           "HYBRIDLIB_RESULTS": str(tmp_path / "results"), "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
           "JUPYTER_PREFER_ENV_PATH": "1", "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        started = False
        for _ in range(120):
            if server.poll() is not None:
                break
            try:
                started = bool(urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1))
                break
            except OSError:
                time.sleep(0.5)
        if not started:
            pytest.fail("JupyterLab did not start: " + (tmp_path / "lab.log").read_text()[-2000:])
        yield f"{url}/lab/tree/{NOTEBOOK}?token={token}", tmp_path
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _wait(condition, timeout: float, what: str, driver, shots: Path):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    driver.save_screenshot(str(shots / "timeout.png"))
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; screenshot {shots / 'timeout.png'}")


def _prompt(cell) -> str:
    """A code cell's execution count as JupyterLab shows it ("[3]:" -> "3", "[*]:" -> "*", "[ ]:" -> "")."""
    return cell.find_element(By.CSS_SELECTOR, ".jp-InputPrompt").text.strip().strip("[]:").strip()


def _errors(driver) -> list[str]:
    """The text of every output that shows an error: a traceback, or a widget that failed to render."""
    return [o.text[:300] for o in driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")
            if "Traceback" in o.text or "Error displaying widget" in o.text
            or o.get_attribute("data-mime-type") == "application/vnd.jupyter.error"]


def _menu(driver, menu: str, item: str, shots: Path) -> None:
    """Click ``item`` in the menu bar's ``menu``."""
    [bar] = [m for m in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item") if m.text.strip() == menu]
    bar.click()
    entries = lambda: [e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-Menu-item")  # noqa: E731
                       if e.text.strip().startswith(item)]
    _wait(entries, 10, f"the menu item {menu} > {item}", driver, shots)[0].click()


def test_a_notebook_runs_in_jupyterlab_without_errors_and_with_a_progress_widget(lab, browser):
    url, tmp = lab
    browser.get(url)
    cells = lambda: browser.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell")  # noqa: E731
    _wait(lambda: len(cells()) > 5, 90, "the notebook to open", browser, tmp)
    kernel_idle = lambda: browser.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status='idle']")  # noqa: E731,E501
    _wait(kernel_idle, 90, "the kernel to start", browser, tmp)

    _menu(browser, "Edit", "Clear Outputs of All Cells", tmp)  # the saved outputs and counts must not count
    _wait(lambda: all(_prompt(c) == "" for c in cells()), 20, "the outputs to clear", browser, tmp)
    _menu(browser, "Run", "Run All Cells", tmp)

    def all_ran():
        shown = _errors(browser)
        if shown:  # Run All stops at a failing cell: say so now rather than time out
            pytest.fail(f"cells show errors: {shown}")
        return all(_prompt(c).isdigit() for c in cells()) and kernel_idle()

    _wait(all_ran, 300, "every cell to run", browser, tmp)
    browser.save_screenshot(str(tmp / "after-run.png"))

    assert not _errors(browser)
    bars = browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output .widget-hprogress, "
                                                  ".jp-OutputArea-output .widget-progress")
    assert bars, "the training progress bar did not render as a widget"
