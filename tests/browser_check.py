"""Check built book pages the way a reader meets them: in headless Chromium, offline.

Used by ``tests/test_browser.py``; runnable alone:
``python tests/browser_check.py _build/html screenshots/``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STANDIN_LABEL = "procedural stand-in for CIFAR-10 (not real photos)"
DATASET_LABELS = (STANDIN_LABEL, "CIFAR-10")
REAL_PHOTOS = "real CIFAR-10 training photos"  # resnet_lib.chapters.degradation.data_sentence, on real data
SAYS_ITS_DATA = (STANDIN_LABEL, REAL_PHOTOS)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class PageReport:
    """What one page showed: its problems (empty when it passed) and its screenshot."""

    name: str
    problems: list[str] = field(default_factory=list)
    figures: int = 0
    screenshot: Path | None = None


def toc_pages() -> list[tuple[str, bool]]:
    """``(docname, is_chapter)`` for every page in ``_toc.yml``, in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [(toc["root"], False)]
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            name = chapter["file"]
            pages.append((name, Path(name).name[:2].isdigit()))
    return pages


def run_bounded(cmd: list[str], what: str, timeout_s: float, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)``, but a command that runs past ``timeout_s``
    is killed with its whole process group and the test fails in one line naming ``what`` hung.

    The command runs in a session of its own, so the kill reaches its children (Sphinx's workers);
    a Jupyter kernel has a session of its own too, and exits within a second of its parent's death
    (ipykernel's parent poller).
    """
    import pytest

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **kwargs)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout_s)
        hung = False
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        try:  # a grandchild in a session of its own (a kernel) may hold the pipes a moment longer
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            out, err = "", ""
        hung = True
    except BaseException:  # Ctrl-C: leave nothing running
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        raise
    if hung:  # outside the except block: one line, without the TimeoutExpired chained before it
        text = re.sub(r"\x1b\[[0-9;]*m", "", out + err)
        last = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "no output")
        pytest.fail(f"{what} hung: still running after {timeout_s:.0f} s, killed (last output: {last[:200]!r})",
                    pytrace=False)  # fmt: skip
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch_chromium(pw):
    """Debian's Chromium, headless, with the project's flags, from a ``sync_playwright()`` handle."""
    return pw.chromium.launch(executable_path=chromium_path(), args=["--headless", *CHROMIUM_ARGS])


_PAGE_FACTS = """() => {
  const main = document.querySelector('main') || document.body;
  const imgs = [...main.querySelectorAll('.cell_output img, figure img, img.figure')];
  const rendered = imgs.filter(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0);
  const tocLinks = [...document.querySelectorAll('.bd-sidebar-primary nav a.reference.internal')]
      .map(a => ({text: a.textContent.trim(), href: a.href}));
  return {
    title: document.title,
    text: main.innerText,
    images: imgs.length,
    rendered: rendered.length,
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
    tracebacks: main.querySelectorAll('.output.traceback, .output.error, div.traceback').length,
    stderr: main.querySelectorAll('.output.stderr').length,
    tocLinks: tocLinks,
  };
}"""


def _math_rendered(page, timeout_ms: int = 20_000) -> bool | None:
    """``None`` for a page without equations; else whether MathJax typeset every one of them."""
    count = page.evaluate("() => document.querySelectorAll('.bd-article .math').length")
    if not count:
        return None
    try:  # MathJax marks each typeset equation with an mjx-container inside its .math element
        page.wait_for_function(
            "() => [...document.querySelectorAll('.bd-article .math')].every(m => m.querySelector('mjx-container'))",
            timeout=timeout_ms,
        )
    except Exception:  # playwright's TimeoutError
        return False
    return True


def check_pages(html_dir: Path, screenshot_dir: Path | None = None) -> list[PageReport]:
    """Load every TOC page of the built book at ``html_dir`` and report what is wrong."""
    from playwright.sync_api import sync_playwright

    html_dir = Path(html_dir).resolve()
    if screenshot_dir is not None:
        screenshot_dir.mkdir(parents=True, exist_ok=True)
    reports = []
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        blocked: list[str] = []

        def offline(route):  # the reader's network is never needed: block everything but local files
            if route.request.url.startswith("file://"):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        page.route("**/*", offline)
        expected_toc = {Path(name).name for name, _ in toc_pages()}
        for docname, is_chapter in toc_pages():
            report = PageReport(docname)
            path = html_dir / f"{docname}.html"
            if not path.exists():
                report.problems.append(f"{path} was not built")
                reports.append(report)
                continue
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_timeout(300)
            math = _math_rendered(page)
            if math is not None and not math:
                report.problems.append("equations did not render (the book's MathJax did not typeset them offline)")
            facts = page.evaluate(_PAGE_FACTS)
            report.figures = facts["rendered"]
            text = facts["text"]
            if is_chapter and facts["rendered"] == 0:
                report.problems.append("no rendered figure")
            if facts["broken"]:
                report.problems.append(f"images that did not load: {facts['broken'][:3]}")
            if facts["tracebacks"] or "Traceback (most recent call last)" in text:
                report.problems.append("error output or a traceback on the page")
            if facts["stderr"]:
                report.problems.append("stderr output on the page")
            is_data_chapter = is_chapter and not Path(docname).name.startswith("04")
            if is_data_chapter and not any(label in text for label in DATASET_LABELS):
                report.problems.append("the page does not name the dataset it used")
            # A chapter may talk about the stand-in while it ran on real photos (its checks list both
            # datasets); then it must say that it used real photos, else carry the stand-in's label.
            if "stand-in" in text.lower() and is_chapter and not any(s in text for s in SAYS_ITS_DATA):
                report.problems.append(
                    f"mentions a stand-in without its label {STANDIN_LABEL!r} or the words {REAL_PHOTOS!r}"
                )
            linked = {Path(link["href"].split("#")[0]).stem for link in facts["tocLinks"]}
            missing = sorted(name for name in expected_toc if name not in linked and name != "intro")
            if missing:
                report.problems.append(f"table of contents lacks links to {missing}")
            for link in facts["tocLinks"]:
                target = link["href"].split("#")[0]
                if target.startswith("file://") and not Path(target[len("file://") :]).exists():
                    report.problems.append(f"table of contents link {link['text']!r} leads nowhere")
            if screenshot_dir is not None:
                report.screenshot = screenshot_dir / f"{Path(docname).name}.png"
                page.screenshot(path=str(report.screenshot), full_page=True)
            reports.append(report)
        browser.close()
    return reports


if __name__ == "__main__":
    html = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "_build" / "html")
    shots = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "_build" / "screenshots"
    failed = False
    for r in check_pages(html, shots):
        print(f"{r.name}: {r.figures} figures, {'OK' if not r.problems else '; '.join(r.problems)}")
        failed |= bool(r.problems)
    sys.exit(1 if failed else 0)
