"""A notebook that raises must fail both the book build and the notebook tests.

Proved on a temporary copy of the book's configuration with one deliberately broken
notebook (and, as a control, the same book with the error removed builds cleanly).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _tiny_book(tmp_path: Path, broken: bool) -> Path:
    book = tmp_path / ("broken" if broken else "fine")
    (book / "book").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", book / "_config.yml")
    (book / "_build" / "mathjax").mkdir(parents=True)  # html_extra_path must exist (`make mathjax` fills it)
    shutil.copy(ROOT / "book" / "references.bib", book / "book" / "references.bib")
    (book / "book" / "logo.svg").write_text((ROOT / "book" / "logo.svg").read_text())
    (book / "book" / "intro.md").write_text("# A tiny book\n\nOne page, one notebook.\n")
    (book / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/chapter\n")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter"), nbformat.v4.new_code_cell("x = 1 + 1")]
    if broken:
        nb.cells.append(nbformat.v4.new_code_cell("raise RuntimeError('a deliberately broken cell')"))
    nbformat.write(nb, book / "book" / "chapter.ipynb")
    return book


def _env() -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def _build(book: Path) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "jupyter-book"), "build", str(book), "-W", "-n", "--keep-going"]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)


def _nbval(book: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider", "book/chapter.ipynb"]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=book, env=_env(), timeout=600)


def test_book_build_and_nbval_fail_on_an_exception(tmp_path):
    broken = _tiny_book(tmp_path, broken=True)
    build = _build(broken)
    assert build.returncode != 0, build.stdout[-2000:]
    assert "Executing notebook failed" in build.stdout + build.stderr
    nbval = _nbval(broken)
    assert nbval.returncode != 0, nbval.stdout[-2000:]
    assert "deliberately broken" in nbval.stdout


def test_the_same_book_without_the_exception_builds(tmp_path):
    fine = _tiny_book(tmp_path, broken=False)
    build = _build(fine)
    assert build.returncode == 0, (build.stdout + build.stderr)[-3000:]
    assert (fine / "_build" / "html" / "index.html").exists()
    assert _nbval(fine).returncode == 0
