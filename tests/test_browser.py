"""The notebooks as a person meets them: JupyterLab in a real (headless) Chromium.

The other notebook tests run kernels headless, where widgets fall back to static figures; only a
browser shows whether the ipywidgets views (event display, threshold explorer, tqdm bars)
really render and respond. This test starts ``jupyter lab`` on 127.0.0.1 with a random port and
token, opens ``00_quickstart`` (event display slider) and ``02_top_tagging`` (threshold explorer)
with their ``ci-tiny`` parameters, runs all cells through JupyterLab's own
``notebook:run-all-cells`` command, and checks the page: no error output, every widget view
rendered (no "Loading widget...", no text-repr fallback), moving a slider with the keyboard
changes the numbers and the figure. Screenshots go to ``$JETLAB_BROWSER_ARTIFACTS`` (default
``test-artifacts/browser/``).

The browser is Debian's ``chromium`` (``apt-get install chromium``; ``.ci/run`` installs it),
driven by Playwright with ``executable_path`` (Playwright's own browser download is not needed).
The test is skipped only when no Chromium binary exists (it fails instead when ``JETLAB_REQUIRE_BROWSER`` is set, as
``.ci/run`` does); set ``JETLAB_CHROMIUM`` to use another.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from jetlab import runner

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
PROFILE = "ci-tiny"
ARTIFACTS = Path(os.environ.get("JETLAB_BROWSER_ARTIFACTS", ROOT / "test-artifacts" / "browser"))
#: upper bounds, generous for a loaded 2-core machine; a normal run takes a fraction of them
SERVER_START_S = 90
RUN_ALL_S = {"00_quickstart": 240, "02_top_tagging": 420}
UI_S = 60

pytestmark = [pytest.mark.notebook, pytest.mark.slow]


def _chromium() -> str | None:
    for cand in (os.environ.get("JETLAB_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if cand and (shutil.which(cand) or Path(cand).is_file()):
            return shutil.which(cand) or cand
    return None


CHROMIUM = _chromium()
if CHROMIUM is None and os.environ.get("JETLAB_REQUIRE_BROWSER"):  # CI (.ci/run) installs it: a skip there hides a failure
    pytest.fail("JETLAB_REQUIRE_BROWSER is set but no Chromium binary was found", pytrace=False)
if CHROMIUM is None:
    pytest.skip("no Chromium binary found (apt-get install chromium, or set JETLAB_CHROMIUM); "
                "the real-browser notebook test needs one", allow_module_level=True)
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # part of the test extra: a missing driver is a broken install, not a skip
    pytest.fail("the browser test needs Playwright's Python driver: pip install -e '.[test]'", pytrace=False)


# --------------------------------------------------------------------------- JupyterLab server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(directory: Path) -> None:
    """User settings for the test server: every cell attached to the DOM (so all outputs can be
    inspected), no news/update notifications over the screenshots."""
    files = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    }
    for name, value in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        _settings(root / "settings")
        env = {k: v for k, v in os.environ.items()
               if k not in ("JETLAB_HEADLESS", "JETLAB_CHECKPOINT", "MPLBACKEND", "PYTEST_CURRENT_TEST")}
        env.update(JETLAB_CACHE=str(root / "cache"), JETLAB_DATA=str(root / "data"), OMP_NUM_THREADS="2",
                   JUPYTERLAB_SETTINGS_DIR=str(root / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"),
                   JUPYTER_RUNTIME_DIR=str(root / "runtime"), IPYTHONDIR=str(root / "ipython"))
        self.log = open(root / "jupyterlab.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True", "--ServerApp.terminals_enabled=False"]
            + (["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                self.api("status")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not answer within {SERVER_START_S} s:\n{self.log_text()}") from None
                time.sleep(0.5)

    def api(self, path: str):
        req = urllib.request.Request(f"{self.base}/api/{path}", headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def kernel_state(self, notebook_path: str) -> str | None:
        for session in self.api("sessions"):
            if session.get("path") == notebook_path:
                return session["kernel"]["execution_state"]
        return None

    def log_text(self) -> str:
        self.log.flush()
        return (self.root / "jupyterlab.log").read_text()[-4000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server and the kernels it started
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("lab")
    for stem in ("00_quickstart", "02_top_tagging"):
        # the notebook with its ci-tiny parameters injected (papermill's cell, as `jetlab run`
        # --prepare-only writes it); its outputs go to a tmp folder
        prepared = runner.run_notebook(NOTEBOOK_DIR / f"{stem}.ipynb", profile=PROFILE,
                                       out=root / "outputs" / stem, prepare_only=True).executed
        (root / "work").mkdir(exist_ok=True)
        shutil.copy(prepared, root / "work" / f"{stem}.ipynb")
    server = Lab(root)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


# --------------------------------------------------------------------------- page helpers
def _shot(target, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    target.screenshot(path=str(path))
    assert path.stat().st_size > 1000
    return path


#: JavaScript: the notebook panel showing ``path`` (JupyterLab's app object is exposed for tests)
PANEL = "const panel = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && w.context.path === path);"


def _model_outputs(page, rel: str) -> list[list[dict]]:
    """Every code cell's outputs as JupyterLab's notebook model holds them (nbformat dicts)."""
    return page.evaluate("(path) => {" + PANEL + """
        return panel.content.widgets.filter(c => c.model.type === 'code').map(c => c.model.outputs.toJSON());
    }""", rel)


def _open_and_run_all(page, lab: Lab, stem: str):
    """Open the notebook in a workspace of its own, run all cells, wait until the kernel is
    done; return (the notebook panel's locator, the outputs)."""
    rel = f"work/{stem}.ipynb"
    page.goto(f"{lab.base}/lab/workspaces/{stem}/tree/{rel}?reset&token={lab.token}")
    page.wait_for_function("(path) => { if (!window.jupyterapp) return false; " + PANEL + """
        return panel && panel.sessionContext.session && panel.sessionContext.session.kernel
            && panel.sessionContext.session.kernel.status === 'idle';
    }""", arg=rel, timeout=UI_S * 1000 * 2)
    panel_id = page.evaluate("(path) => {" + PANEL + " window.jupyterapp.shell.activateById(panel.id); return panel.id; }", rel)
    panel = page.locator(f'[id="{panel_id}"]')
    prompts = panel.locator(".jp-CodeCell .jp-InputPrompt")
    n_code = len([c for c in nbformat.read(lab.root / rel, as_version=4).cells if c.cell_type == "code"])
    assert prompts.count() == n_code
    page.evaluate("(path) => {" + PANEL + """
        window.jupyterapp.shell.activateById(panel.id);
        return window.jupyterapp.commands.execute('notebook:run-all-cells');
    }""", rel)
    deadline = time.monotonic() + RUN_ALL_S[stem]
    while True:
        shown = prompts.all_inner_texts()
        done = all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in shown)
        errored = any(o.get("output_type") == "error" for outs in _model_outputs(page, rel) for o in outs)
        busy = any("*" in p for p in shown) or lab.kernel_state(rel) != "idle"
        if (done or errored) and not busy:
            break
        if time.monotonic() > deadline:
            _shot(page, f"{stem}_timeout")
            pytest.fail(f"{stem}: cells still running after {RUN_ALL_S[stem]} s; prompts {shown}\n{lab.log_text()}")
        time.sleep(1.0)
    outputs = _model_outputs(page, rel)
    errors = [(i, o.get("ename"), o.get("evalue")) for i, outs in enumerate(outputs) for o in outs
              if o.get("output_type") == "error"]
    assert errors == [], f"{stem}: error outputs {errors}"
    return panel, outputs


def _check_widgets_rendered(panel, stem: str) -> None:
    text = panel.inner_text()
    assert "Loading widget" not in text, f"{stem}: a widget view never loaded"
    assert "Traceback" not in text
    for repr_start in ("IntSlider(", "FloatSlider(", "HBox(children=", "VBox(children=", "Output()"):
        assert repr_start not in text, f"{stem}: a widget is shown as its text repr {repr_start}..."
    assert "Error displaying widget" not in text


def _slider_changes_view(page, view, stem: str, label: str):
    """Press ArrowRight on the slider handle of ``view``; return (numbers, image) before and after."""
    handle = view.locator(".widget-slider .noUi-handle").first
    image = view.locator(".widget-output img").first
    html = view.locator(".widget-html-content").first
    image.wait_for(timeout=UI_S * 1000)
    before = (html.inner_text(), image.get_attribute("src"))
    _shot(view, f"{stem}_{label}_before")
    handle.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "([el, old]) => el.innerText !== old", arg=[html.element_handle(), before[0]], timeout=UI_S * 1000)
    page.wait_for_function(
        "([view, old]) => { const img = view.querySelector('.widget-output img'); return img && img.src !== old; }",
        arg=[view.element_handle(), before[1]], timeout=UI_S * 1000)
    after = (html.inner_text(), image.get_attribute("src"))
    _shot(view, f"{stem}_{label}_after")
    return before, after


# --------------------------------------------------------------------------- the tests
def test_quickstart_event_display_in_jupyterlab(lab: Lab, browser) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        panel, _ = _open_and_run_all(page, lab, "00_quickstart")
        _check_widgets_rendered(panel, "00_quickstart")
        views = panel.locator(".jp-OutputArea-output .widget-vbox").filter(has=page.locator(".widget-slider"))
        assert views.count() == 1, "00_quickstart shows one event display"
        view = views.first
        view.scroll_into_view_if_needed()
        assert view.locator("button").count() == 2  # previous / next
        before, after = _slider_changes_view(page, view, "00_quickstart", "event_display")
        # the numbers follow the slider: jet 0 -> jet 1, with that jet's own pT and multiplicity
        assert before[0].startswith("jet 0 ") and after[0].startswith("jet 1 "), (before[0], after[0])
        assert before[1] != after[1] and before[1].startswith("data:image/png")
        assert view.locator(".widget-slider .widget-readout").inner_text().strip() == "1"
        _shot(page, "00_quickstart_page")
    finally:
        page.close()


def test_top_tagging_threshold_explorer_and_progress_bars_in_jupyterlab(lab: Lab, browser) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        panel, outputs = _open_and_run_all(page, lab, "02_top_tagging")
        _check_widgets_rendered(panel, "02_top_tagging")
        # the library's tqdm.auto bars are Jupyter widgets here: the data generation (nothing is pretrained
        # first: checkpoint="auto" is the foundation model jetlab ships)
        bars = panel.locator(".jp-OutputArea-output .widget-hprogress")
        assert bars.count() >= 1, "expected a tqdm widget bar for the data generation"
        bars.first.scroll_into_view_if_needed()
        _shot(page, "02_top_tagging_progress_bars")  # the bars in their cell, as a reader sees them
        widget_views = [o for outs in outputs for o in outs
                        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert widget_views, "02_top_tagging displayed no widget"

        views = panel.locator(".jp-OutputArea-output .widget-vbox").filter(has=page.locator(".widget-slider"))
        assert views.count() == 1, "02_top_tagging shows one threshold explorer"
        view = views.first
        view.scroll_into_view_if_needed()
        assert view.locator("button", has_text="Apply").count() == 1
        before, after = _slider_changes_view(page, view, "02_top_tagging", "threshold_explorer")
        number = r"threshold = ([-+0-9.e]+)"
        t0, t1 = (float(re.search(number, s).group(1)) for s in (before[0], after[0]))
        assert t1 > t0, (before[0], after[0])
        assert "ε" in after[0] and "1/ε" in after[0] and before[1] != after[1]
        _shot(page, "02_top_tagging_page")
    finally:
        page.close()
