"""The built book in a real browser (Debian's Chromium, headless, offline).

Needs ``_build/html`` (``make book``). ``make test`` builds it first and sets
``RESNET_BOOK_REQUIRE_BUILD=1``, so there a missing build fails instead of skipping.
Screenshots of every page land in ``_build/screenshots/``.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.browser_check import ROOT, SAYS_ITS_DATA, check_pages, chromium_path, launch_chromium, toc_pages

HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def built_book() -> Path:
    required = os.environ.get("RESNET_BOOK_REQUIRE_BUILD") == "1"
    if not (HTML / "index.html").exists():
        if required:
            pytest.fail("_build/html is missing: run `make book` first")
        pytest.skip("_build/html is missing: run `make book` first")
    if chromium_path() is None:
        if required:
            pytest.fail("Chromium is missing: run `make browser-deps`")
        pytest.skip("Chromium is missing: run `make browser-deps`")
    return HTML


@pytest.fixture(scope="module")
def reports(built_book):
    return {r.name: r for r in check_pages(built_book, SCREENSHOTS)}


@pytest.mark.parametrize("docname", [name for name, _ in toc_pages()])
def test_page_reads_well(reports, docname):
    report = reports[docname]
    assert not report.problems, f"{docname}: " + "; ".join(report.problems)
    assert report.screenshot is not None and report.screenshot.stat().st_size > 10_000


def test_the_check_fails_when_a_page_loses_its_figures_its_data_or_its_math(built_book, tmp_path):
    """Proved on a temporary copy: strip the images out of one chapter page, the words that say
    which data it used out of another that mentions the stand-in, and the book's MathJax."""
    copy = tmp_path / "html"
    shutil.copytree(built_book, copy)
    chapters = [name for name, is_chapter in toc_pages() if is_chapter]
    page = copy / f"{chapters[0]}.html"
    page.write_text(re.sub(r"<img [^>]*>", "", page.read_text()))
    talker = next(name for name in chapters[1:] if "stand-in" in (copy / f"{name}.html").read_text())
    page = copy / f"{talker}.html"
    text = page.read_text()
    for words in SAYS_ITS_DATA:
        text = text.replace(words, "some data")
    page.write_text(text)
    shutil.rmtree(copy / "mathjax")  # and the book's own MathJax: no page may then claim its equations render
    broken = {r.name: r for r in check_pages(copy)}
    no_math = [name for name, r in broken.items() if any(p.startswith("equations did not render") for p in r.problems)]
    assert "book/05_residual_networks" in no_math, {name: r.problems for name, r in broken.items()}
    assert "no rendered figure" in broken[chapters[0]].problems
    assert any(p.startswith("mentions a stand-in without its label") for p in broken[talker].problems)
    others = [r for name, r in broken.items() if name not in (chapters[0], talker)]
    assert all("no rendered figure" not in r.problems for r in others)


def _section_shot(page, section, path: Path) -> None:
    """A full-width screenshot of one section, the page's sticky header kept out of it."""
    page.add_style_tag(content=".bd-header, .skip-link, .bd-header-article { position: static !important; }")
    box, scrolled = section.bounding_box(), page.evaluate("window.scrollY")
    clip = {"x": 0, "y": box["y"] + scrolled, "width": 1280, "height": box["height"]}
    page.screenshot(path=str(path), full_page=True, clip=clip)


def test_teaching_parts_render_and_solutions_toggle(built_book):
    """Chapter 5's derivation typesets beside its gradient figure, chapter 4's intuition is on the page, and
    every chapter ends with exercises whose solutions stay folded until the reader opens them (screenshots of
    each, for a person to look at, in ``_build/screenshots/teaching/``)."""
    from playwright.sync_api import sync_playwright

    shots = SCREENSHOTS / "teaching"
    shots.mkdir(parents=True, exist_ok=True)
    chapters = [name for name, is_chapter in toc_pages() if is_chapter]
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file://") else r.abort())

            page.goto((built_book / "book" / "05_residual_networks.html").as_uri(), wait_until="load")
            heading = page.locator("h3", has_text="Gradients, layer by layer").first
            derivation = heading.locator("xpath=..")  # the heading's own section
            derivation.locator("mjx-container").first.wait_for(timeout=20_000)
            assert derivation.locator("mjx-container").count() >= 2, "chapter 5's derivation has no typeset equations"
            assert derivation.locator("img").count() >= 1, "chapter 5's derivation is not beside its gradient figure"
            _section_shot(page, derivation, shots / "ch5_derivation.png")

            page.goto((built_book / "book" / "04_shattered_gradients.html").as_uri(), wait_until="load")
            intuition = page.locator("h2", has_text="Why depth shatters").first.locator("xpath=..")
            assert "Kinks multiply with depth" in intuition.inner_text()
            _section_shot(page, intuition, shots / "ch4_intuition.png")

            for name in chapters:
                page.goto((built_book / f"{name}.html").as_uri(), wait_until="load")
                solutions = page.locator(".admonition.dropdown")
                assert solutions.count() >= 3, f"{name}: {solutions.count()} exercise solutions (want 3 to 5)"
                first = solutions.first
                first.scroll_into_view_if_needed()
                body = first.locator("p").nth(1)
                assert not body.is_visible(), f"{name}: the first solution is open before the reader asks"
                if name.endswith("03_degradation"):
                    first.screenshot(path=str(shots / "ch3_solution_folded.png"))
                first.locator("button.toggle-button").first.click()
                body.wait_for(state="visible", timeout=5_000)
                if name.endswith("03_degradation"):
                    first.screenshot(path=str(shots / "ch3_solution_open.png"))
        finally:
            browser.close()
