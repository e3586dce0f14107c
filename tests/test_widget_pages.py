"""The explorers on the built pages: a live widget for an online reader, a static figure offline.

An explorer's page carries a static figure of its first state and the widget's view tag
(``resnet_lib/widgets.py``). Online, the ipywidgets embed scripts named in ``_config.yml``
render the live widget, with the figure its output widget drew, and the static figure hides;
offline, the static figure and its caption show, never an empty box.

"Online" is played by headless Chromium with every request for those scripts answered from
the same files of their npm packages (which jsDelivr serves), byte for byte, so the
integrity hashes in ``_config.yml`` are checked too; nothing else leaves the machine.
Checked on a one-notebook book built here, and on chapters 2 and 4 of ``_build/html`` when
the book is built (``make test`` builds it first).

Every subprocess here has a timeout that fails the test in one line naming what hung
(``browser_check.run_bounded``). The one-notebook build used to hang under load (issue 31): nbclient
waited on the kernel's shell socket for the cell's whole timeout while the kernel's reply already sat
in it, its wake-up lost (see ``_ext/kernel_wakeup.py``, which the book's ``_config.yml`` loads).
``tests/test_widget_build_repeats.py`` builds this book again and again with short timeouts.
"""

from __future__ import annotations

import mimetypes
import os
import re
import shutil
import sys
import tarfile
from pathlib import Path

import nbformat
import pytest
import yaml

from tests.browser_check import ROOT, chromium_path, launch_chromium, run_bounded

BIN = Path(sys.executable).parent
SCREENSHOTS = ROOT / "screenshots"
BUILT = ROOT / "_build" / "html" / "book"
EXPLORER_PAGES = ["02_vanishing_and_exploding_gradients", "04_shattered_gradients"]
CDN = re.compile(r"^https://cdn\.jsdelivr\.net/npm/(?P<package>(?:@[^/]+/)?[^/@]+)@(?P<version>[^/]+)/(?P<path>.+)$")
pytestmark = pytest.mark.browser
REQUIRED = os.environ.get("RESNET_BOOK_REQUIRE_BUILD") == "1"


def _embed_scripts() -> list[str]:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return list(config["sphinx"]["config"]["nb_ipywidgets_js"])


@pytest.fixture(scope="module")
def cdn_files(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """``(package, version) -> unpacked npm package`` for every embed script ``_config.yml`` names."""
    if chromium_path() is None:
        (pytest.fail if REQUIRED else pytest.skip)("Chromium is missing: run `make browser-deps`")
    npm = shutil.which("npm")
    if npm is None:
        (pytest.fail if REQUIRED else pytest.skip)("npm is missing: it fetches the embed scripts' packages")
    where = tmp_path_factory.mktemp("npm")
    packages = {}
    for url in _embed_scripts():
        match = CDN.match(url)
        assert match, f"{url} is not a jsDelivr npm URL"
        spec = f"{match['package']}@{match['version']}"
        packed = run_bounded([npm, "pack", "--silent", spec], f"npm pack {spec}", 300, cwd=where)
        assert packed.returncode == 0, f"npm pack {spec} failed: {packed.stderr.strip()[-300:]!r}"
        folder = where / spec.replace("/", "_")
        with tarfile.open(where / packed.stdout.strip().splitlines()[-1]) as archive:
            archive.extractall(folder, filter="data")
        packages[(match["package"], match["version"])] = folder / "package"
    return packages


def _serve(route, cdn_files, requests: list[str]) -> None:
    url = route.request.url
    match = CDN.match(url)
    if url.startswith("file://"):
        route.continue_()
    elif match and (match["package"], match["version"]) in cdn_files:
        path = cdn_files[(match["package"], match["version"])] / match["path"].split("?")[0]
        requests.append(url)
        if path.is_file():
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            route.fulfill(
                status=200, body=path.read_bytes(), headers={"Content-Type": kind, "Access-Control-Allow-Origin": "*"}
            )
        else:
            route.fulfill(status=404, body="not in the package")
    else:
        requests.append(url)
        route.abort()


def _look(page_file: Path, online: bool, cdn_files, shot: str) -> dict:
    """Open ``page_file`` offline or online; what its explorers showed."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            requests: list[str] = []
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            if online:
                page.route("**/*", lambda route: _serve(route, cdn_files, requests))
            else:
                page.route(
                    "**/*",
                    lambda route: (
                        route.continue_()
                        if route.request.url.startswith("file://")
                        else (requests.append(route.request.url), route.abort())
                    ),
                )
            page.goto(page_file.as_uri(), wait_until="load")
            explorer = page.locator(".resnet-explorer").first
            explorer.wait_for(state="attached", timeout=30_000)
            if online:
                page.locator(".resnet-explorer .widget-subarea .widget-output img").first.wait_for(timeout=60_000)
            else:
                page.wait_for_timeout(1000)
            explorer.scroll_into_view_if_needed()
            facts = explorer.evaluate(
                """el => {
                  const shown = e => !!e && e.getBoundingClientRect().height > 0
                    && getComputedStyle(e).display !== 'none';
                  const staticFig = el.querySelector('.resnet-explorer-static');
                  const staticImg = staticFig && staticFig.querySelector('img');
                  const liveImg = el.querySelector('.widget-subarea .widget-output img');
                  return {
                    height: el.getBoundingClientRect().height,
                    static_shown: shown(staticFig),
                    static_loaded: !!staticImg && staticImg.complete && staticImg.naturalWidth > 0,
                    caption: staticFig ? staticFig.innerText : '',
                    live_controls: el.querySelectorAll('.widget-subarea .widget-slider, .widget-subarea select').length,
                    live_figure: !!liveImg && liveImg.complete && liveImg.naturalWidth > 0 && shown(liveImg),
                  };
                }"""
            )
            explorer.screenshot(path=str(SCREENSHOTS / shot))
            facts["requests"], facts["errors"] = requests, errors
            return facts
        finally:
            browser.close()


def _check_offline(facts: dict) -> None:
    assert facts["static_shown"] and facts["static_loaded"], f"offline, the static figure did not show: {facts}"
    assert "first state" in facts["caption"] and facts["height"] > 150, facts
    assert facts["live_controls"] == 0 and not facts["live_figure"], facts


def _check_online(facts: dict) -> None:
    assert facts["live_controls"] >= 1 and facts["live_figure"], f"online, the live widget did not render: {facts}"
    assert not facts["static_shown"], "online, the static figure should give way to the live widget"
    assert not [u for u in facts["requests"] if not CDN.match(u)], facts["requests"]
    # sphinx-book-theme's thebe script declares THEBE_JS_URL twice once require.js is on the page;
    # it does not touch the widgets (seen with and without them rendering). Every other error fails.
    errors = [e for e in facts["errors"] if "THEBE_JS_URL" not in e]
    assert not errors, errors


# --------------------------------------------------------------------------- a one-notebook book


#: Seconds one build of the one-notebook book may take before it counts as hung. It took 12-13 s on an idle
#: 2-core machine, 16-40 s with both cores busy (measured); a hung build idles forever (CI's job limit: 90 min).
BUILD_TIMEOUT_S = 240
#: Seconds its one code cell may run: nbclient then interrupts the kernel and the build fails (-W), naming the
#: cell, before the process timeout above has to kill it. The cell takes 2-6 s.
CELL_TIMEOUT_S = 120


def write_widget_book(book: Path) -> None:
    """A book with the project's configuration and one notebook that shows chapter 4's explorer."""
    (book / "book").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", book / "_config.yml")
    shutil.copy(ROOT / "book" / "references.bib", book / "book" / "references.bib")
    shutil.copy(ROOT / "book" / "logo.svg", book / "book" / "logo.svg")
    shutil.copytree(ROOT / "_static", book / "_static")
    shutil.copytree(ROOT / "_ext", book / "_ext")  # _config.yml's local extension (kernel_wakeup)
    # The book's own MathJax 3 (`make mathjax`) when it is there: the widgets typeset their labels with whatever
    # MathJax the page holds, so the live explorer is tested beside the real one (see _static/widget_typeset.js).
    mathjax = ROOT / "_build" / "mathjax"
    if (mathjax / "mathjax" / "tex-mml-chtml.js").exists():
        shutil.copytree(mathjax, book / "_build" / "mathjax")
    else:
        (book / "_build" / "mathjax").mkdir(parents=True)  # html_extra_path must exist
    (book / "book" / "intro.md").write_text("# A tiny book\n\nOne explorer.\n")
    (book / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/explorer\n")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["execution"] = {"timeout": CELL_TIMEOUT_S}  # myst-nb's per-notebook execution timeout
    nb.cells = [
        nbformat.v4.new_markdown_cell("# An explorer\n\nWith math, as every chapter has: $x_{l+1} = x_l + F(x_l)$."),
        nbformat.v4.new_code_cell(
            "from resnet_lib.plots import shattered_gradients as figs\n\n"
            "figs.depth_explorer(units=16, n_inputs=64, max_depth=8, max_lag=16)"
        ),
    ]
    nbformat.write(nb, book / "book" / "explorer.ipynb")


def build_widget_book(book: Path, timeout_s: float = BUILD_TIMEOUT_S, what: str = "") -> Path:
    """``jupyter-book build`` of ``book``; the explorer's page. A hang or a failure fails the test in one line."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    cmd = [str(BIN / "jupyter-book"), "build", str(book), "-W", "-n", "--keep-going"]
    build = run_bounded(cmd, f"jupyter-book build of the widget book{what} ({book})", timeout_s, env=env)
    if build.returncode != 0:
        output = (build.stdout + build.stderr).splitlines()
        reason = next((line for line in output if "Error" in line or "WARNING" in line), output[-1] if output else "")
        pytest.fail(f"jupyter-book build of the widget book{what} failed (exit {build.returncode}): {reason[:300]}",
                    pytrace=False)  # fmt: skip
    return book / "_build" / "html" / "book" / "explorer.html"


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory) -> Path:
    """The one-notebook widget book, built (see :func:`write_widget_book`)."""
    if chromium_path() is None:
        (pytest.fail if REQUIRED else pytest.skip)("Chromium is missing: run `make browser-deps`")
    if not (ROOT / "_build" / "mathjax" / "mathjax" / "tex-mml-chtml.js").exists():
        (pytest.fail if REQUIRED else pytest.skip)("the book's MathJax is missing: run `make mathjax`")
    book = tmp_path_factory.mktemp("widget_book")
    write_widget_book(book)
    return build_widget_book(book)


def test_offline_the_explorer_is_a_static_figure(tiny_book, cdn_files):
    _check_offline(_look(tiny_book, online=False, cdn_files=cdn_files, shot="widget_tiny_offline.png"))


def test_online_the_embed_scripts_render_the_live_explorer(tiny_book, cdn_files):
    _check_online(_look(tiny_book, online=True, cdn_files=cdn_files, shot="widget_tiny_online.png"))


def test_the_page_references_the_configured_embed_scripts(tiny_book):
    html = tiny_book.read_text()
    for url in _embed_scripts():
        assert f'src="{url}"' in html, f"the page does not load {url}"
    assert 'type="application/vnd.jupyter.widget-state+json"' in html


# --------------------------------------------------------------------------- the built chapters


@pytest.fixture(scope="module")
def built_chapters() -> Path:
    if not (BUILT / f"{EXPLORER_PAGES[0]}.html").exists():
        (pytest.fail if REQUIRED else pytest.skip)("_build/html is missing: run `make book` first")
    return BUILT


@pytest.mark.parametrize("name", EXPLORER_PAGES)
def test_built_chapter_explorer_offline_and_online(built_chapters, cdn_files, name):
    page = built_chapters / f"{name}.html"
    _check_offline(_look(page, online=False, cdn_files=cdn_files, shot=f"widget_{name[:2]}_offline.png"))
    _check_online(_look(page, online=True, cdn_files=cdn_files, shot=f"widget_{name[:2]}_online.png"))
