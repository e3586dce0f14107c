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
"""

from __future__ import annotations

import mimetypes
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import nbformat
import pytest
import yaml

from tests.browser_check import ROOT, chromium_path, launch_chromium

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
        packed = subprocess.run([npm, "pack", "--silent", spec], cwd=where, capture_output=True, text=True, timeout=300)
        assert packed.returncode == 0, f"npm pack {spec}: {packed.stderr[-500:]}"
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


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory) -> Path:
    """A book with the project's configuration and one notebook that shows chapter 4's explorer."""
    if chromium_path() is None:
        (pytest.fail if REQUIRED else pytest.skip)("Chromium is missing: run `make browser-deps`")
    book = tmp_path_factory.mktemp("widget_book")
    (book / "book").mkdir()
    shutil.copy(ROOT / "_config.yml", book / "_config.yml")
    shutil.copy(ROOT / "book" / "references.bib", book / "book" / "references.bib")
    shutil.copy(ROOT / "book" / "logo.svg", book / "book" / "logo.svg")
    shutil.copytree(ROOT / "_static", book / "_static")
    # The book's own MathJax 3 (`make mathjax`): the widgets typeset their labels with whatever MathJax
    # the page holds, so the live explorer is tested beside the real one (see _static/widget_typeset.js).
    mathjax = ROOT / "_build" / "mathjax"
    if not (mathjax / "mathjax" / "tex-mml-chtml.js").exists():
        (pytest.fail if REQUIRED else pytest.skip)("the book's MathJax is missing: run `make mathjax`")
    shutil.copytree(mathjax, book / "_build" / "mathjax")
    (book / "book" / "intro.md").write_text("# A tiny book\n\nOne explorer.\n")
    (book / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/explorer\n")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# An explorer\n\nWith math, as every chapter has: $x_{l+1} = x_l + F(x_l)$."),
        nbformat.v4.new_code_cell(
            "from resnet_lib.plots import shattered_gradients as figs\n\n"
            "figs.depth_explorer(units=16, n_inputs=64, max_depth=8, max_lag=16)"
        ),
    ]
    nbformat.write(nb, book / "book" / "explorer.ipynb")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    cmd = [str(BIN / "jupyter-book"), "build", str(book), "-W", "-n", "--keep-going"]
    build = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert build.returncode == 0, (build.stdout + build.stderr)[-3000:]
    return book / "_build" / "html" / "book" / "explorer.html"


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
