"""A chapter in JupyterLab, in a real browser: every cell runs, and the explorer answers its controls.

Starts JupyterLab (its config, data and runtime folders in a temporary directory) on a free
localhost port with a token, opens chapter 4 in headless Chromium through Playwright, runs
all cells under the ``ci`` profile reading the results cache the build made
(``$RESNET_BOOK_RESULTS``), and checks that no cell shows an error, that the gradient-flow
depth explorer renders its figure, and that dragging its depth slider redraws it. The notebook runs
from a copy, so ``book/`` keeps no outputs. The server is stopped whatever happens.
Screenshots before and after the slider moved land in ``screenshots/``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.browser_check import ROOT, chromium_path, launch_chromium

pytestmark = pytest.mark.browser
CHAPTER = "04_shattered_gradients.ipynb"
EXPLORER_CALL = "depth_explorer("
SCREENSHOTS = ROOT / "screenshots"
RUN_ALL_TIMEOUT_S = 1200
# After "Run All" every code cell's prompt turns to '[*]:' at once. In one run of the full suite (and once
# alone, under load) the first click left every prompt at '[ ]:' with the kernel idle: the command reached the
# notebook before its kernel connection was ready. So the test clicks again after RERUN_AFTER_S, at most
# RUN_ALL_CLICKS times, and says how many clicks it took; a kernel that never runs a cell fails the test.
RERUN_AFTER_S = 60
RUN_ALL_CLICKS = 3
# The first cell (imports, setup) takes seconds; a kernel that takes the cells ('[*]:') but finishes none in this
# long is hung, and the test says so instead of waiting out RUN_ALL_TIMEOUT_S.
FIRST_RESULT_TIMEOUT_S = 300
# The build's environment, read before the tests' hermetic fixture replaces the cache folders.
BUILD_ENV = dict(os.environ)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (JupyterLab and its kernels), SIGKILL if it lingers."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=15)


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory):
    """``(base URL, token, log path)`` of a JupyterLab serving a copy of ``book/``; stopped afterwards."""
    required = BUILD_ENV.get("RESNET_BOOK_REQUIRE_BUILD") == "1"
    if chromium_path() is None:
        (pytest.fail if required else pytest.skip)("Chromium is missing: run `make browser-deps`")
    if shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("JupyterLab is missing from the venv: run `make install` (requirements.txt lists it)")
    home = tmp_path_factory.mktemp("jupyter")
    shutil.copytree(ROOT / "book", home / "book")
    results = BUILD_ENV.get("RESNET_BOOK_RESULTS") or str(ROOT / "_results")
    env = {
        **BUILD_ENV,
        "RESNET_BOOK_PROFILE": "ci",
        "RESNET_BOOK_RESULTS": results,
        "OMP_NUM_THREADS": "1",
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "IPYTHONDIR": str(home / "ipython"),
    }
    # Render every cell: JupyterLab 4 draws only the cells in view by default, so the test could not read the others.
    tracker = home / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    port, token = _free_port(), os.urandom(16).hex()
    log = home / "jupyterlab.log"
    command = [
        str(Path(sys.executable).parent / "jupyter-lab"),
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={home / 'book'}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        *(["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
    ]
    with log.open("w") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                lines = [line for line in log.read_text().splitlines() if line.strip()] or ["no output"]
                pytest.fail(f"JupyterLab did not start within 120 s (exit {server.poll()}; its log {log} ends: "
                            f"{lines[-1][-200:]!r})", pytrace=False)  # fmt: skip
            time.sleep(0.5)
        yield base, token, log
    finally:
        _stop(server)


_CELL_FACTS = """() => {
  const cells = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')];
  return cells.map(cell => ({
    prompt: (cell.querySelector('.jp-InputPrompt')?.textContent || '').trim(),
    source: cell.querySelector('.jp-InputArea-editor')?.textContent || '',
    errors: cell.querySelectorAll('[data-mime-type="application/vnd.jupyter.error"]').length,
    text: cell.querySelector('.jp-Cell-outputArea')?.innerText || '',
  }));
}"""


def _accept_dialogs(page) -> list[str]:
    """Accept any JupyterLab dialog (e.g. "Select Kernel": the chapter's own python3 kernel); their titles."""
    titles = []
    dialogs = page.locator(".jp-Dialog")
    while dialogs.count():
        titles.append(dialogs.first.locator(".jp-Dialog-header").inner_text().strip())
        dialogs.first.locator("button.jp-mod-accept").click()
        page.wait_for_timeout(500)
    return titles


def _click_run_all(page) -> None:
    """Run > Run All Cells, through the menu as a reader would."""
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()


def _explorer_figure(explorer) -> str:
    """The ``src`` of the figure inside the explorer's output widget, once it has loaded."""
    image = explorer.locator(".widget-output img").first
    image.wait_for(state="visible", timeout=60_000)
    loaded = image.evaluate("img => img.complete && img.naturalWidth > 0")
    assert loaded, "the explorer's figure did not load"
    return image.get_attribute("src")


def test_chapter_4_runs_in_jupyterlab_and_its_explorer_redraws(jupyter_lab):
    from playwright.sync_api import sync_playwright

    base, token, server_log = jupyter_lab
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            outside: list[str] = []

            def local_only(route):  # no internet: only this JupyterLab is reachable
                if route.request.url.startswith(base):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", local_only)
            page.goto(f"{base}/lab/tree/{CHAPTER}?token={token}", wait_until="domcontentloaded")
            page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=120_000)
            page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').wait_for(timeout=120_000)
            page.wait_for_timeout(2000)
            dialogs = _accept_dialogs(page)
            page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').wait_for(timeout=120_000)

            _click_run_all(page)
            clicks, last_click = 1, time.monotonic()
            started, deadline = time.monotonic(), time.monotonic() + RUN_ALL_TIMEOUT_S
            while True:
                dialogs += _accept_dialogs(page)
                cells = page.evaluate(_CELL_FACTS)
                done = all(c["prompt"][1:-2].isdigit() for c in cells)
                idle = page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').count() == 1
                if (done and idle) or any(c["errors"] for c in cells) or time.monotonic() > deadline:
                    break
                if cells[0]["prompt"] == "[ ]:" and time.monotonic() - last_click > RERUN_AFTER_S:
                    if clicks == RUN_ALL_CLICKS:
                        page.screenshot(path=str(SCREENSHOTS / "jupyterlab_ch4_kernel_never_ran.png"))
                        kernel = page.locator(".jp-Notebook-ExecutionIndicator").first.get_attribute("data-status")
                        pytest.fail(
                            f"the kernel ran no cell after {clicks} clicks on Run All, {RERUN_AFTER_S} s apart "
                            f"(kernel status {kernel!r}, dialogs {dialogs}); "
                            f"server log:\n{server_log.read_text()[-3000:]}"
                        )
                    _click_run_all(page)
                    clicks, last_click = clicks + 1, time.monotonic()
                finished = [c for c in cells if c["prompt"][1:-2].isdigit()]
                if not finished and time.monotonic() - last_click > FIRST_RESULT_TIMEOUT_S:
                    page.screenshot(path=str(SCREENSHOTS / "jupyterlab_ch4_kernel_hung.png"))
                    pytest.fail(
                        f"no cell finished {FIRST_RESULT_TIMEOUT_S} s after Run All (prompts "
                        f"{sorted({c['prompt'] for c in cells})}); server log:\n{server_log.read_text()[-3000:]}"
                    )
                page.wait_for_timeout(2000)
            elapsed = time.monotonic() - started
            page.screenshot(path=str(SCREENSHOTS / "jupyterlab_ch4_after_run_all.png"))
            errors = [c for c in cells if c["errors"] or "Traceback (most recent call last)" in c["text"]]
            assert not errors, (
                f"cells with errors: {[(c['prompt'], c['text'][-500:]) for c in errors]}\n"
                f"server log:\n{server_log.read_text()[-2000:]}"
            )
            assert done and idle, (
                f"run-all did not finish in {RUN_ALL_TIMEOUT_S} s: {[c['prompt'] for c in cells]}\n"
                f"server log:\n{server_log.read_text()[-3000:]}"
            )
            assert "profile 'ci'" in cells[0]["text"], cells[0]["text"]
            n_code = sum(c["cell_type"] == "code" for c in json.loads((ROOT / "book" / CHAPTER).read_text())["cells"])
            assert len(cells) == n_code, f"JupyterLab shows {len(cells)} of the chapter's {n_code} code cells"
            print(
                f"run all cells of {CHAPTER} in JupyterLab: {n_code} code cells in {elapsed:.0f} s; "
                f"Run All clicked {clicks} time(s); dialogs: {dialogs}"
            )

            (index,) = [i for i, c in enumerate(cells) if EXPLORER_CALL in c["source"]]
            explorer = page.locator(".jp-Notebook .jp-CodeCell").nth(index).locator(".jp-Cell-outputArea")
            explorer.scroll_into_view_if_needed()
            slider = explorer.locator(".widget-slider", has_text="depth").first
            readout = slider.locator(".widget-readout")
            depth_before, figure_before = readout.inner_text().strip(), _explorer_figure(explorer)
            assert explorer.locator("select").count() >= 1, "the explorer's net menu is missing"
            explorer.screenshot(path=str(SCREENSHOTS / "jupyterlab_ch4_explorer_before.png"))

            handle = slider.locator(".noUi-handle").first
            box = handle.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] / 2 + 80, box["y"] + box["height"] / 2, steps=8)
            page.mouse.up()
            deadline = time.monotonic() + 120
            while _explorer_figure(explorer) == figure_before and time.monotonic() < deadline:
                page.wait_for_timeout(500)
            page.wait_for_timeout(500)
            depth_after, figure_after = readout.inner_text().strip(), _explorer_figure(explorer)
            explorer.screenshot(path=str(SCREENSHOTS / "jupyterlab_ch4_explorer_after.png"))
            assert depth_after != depth_before, f"the depth slider did not move ({depth_before})"
            assert figure_after != figure_before, f"depth {depth_before} -> {depth_after}, but the figure is the same"
            assert not [u for u in outside if not u.startswith("data:")], f"requests left localhost: {outside[:5]}"
        finally:
            browser.close()
