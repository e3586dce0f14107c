"""The notebook policy: clean notebooks, one set-up cell, visible claim checks, a complete TOC."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(p for p in BOOK.glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
CHAPTERS = [p for p in NOTEBOOKS if p.name[:2].isdigit()]
CHECKED_MARKER = "# NBVAL_CHECK_OUTPUT"
BANNED_IN_CHAPTERS = (r"^\s*class \w+", r"\(nn\.Module\)", r"\.backward\(", r"optimizer\.step\(", r"torch\.optim\.")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def test_the_chapters_are_numbered_in_order():
    """Chapters 1-5 follow the article; 6, 7 and 8 go beyond it (Part III)."""
    assert [p.name[:2] for p in CHAPTERS] == ["01", "02", "03", "04", "05", "06", "07", "08", "09"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path: Path):
    """Only cells that nbval compares on purpose keep outputs; nothing keeps execution counts."""
    for i, cell in enumerate(_cells(path)):
        if cell["cell_type"] != "code":
            continue
        if cell.get("outputs") and not _source(cell).lstrip().startswith(CHECKED_MARKER):
            pytest.fail(f"{path.name} cell {i} keeps outputs that nbval does not check; clear them")
        if cell.get("execution_count") is not None and not _source(cell).lstrip().startswith(CHECKED_MARKER):
            pytest.fail(f"{path.name} cell {i} keeps an execution count; clear it")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_the_setup_cell(path: Path):
    first = next(_source(c) for c in _cells(path) if c["cell_type"] == "code")
    assert '"google.colab" in sys.modules' in first, "the first cell installs resnet_lib in Colab, guarded"
    assert "import resnet_lib as rl" in first
    assert "rl.setup(" in first
    assert first.index("google.colab") < first.index("import resnet_lib"), "install before import"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_has_a_visible_claim_check(path: Path):
    checks = [c for c in _cells(path) if "claim-check" in c.get("metadata", {}).get("tags", [])]
    assert checks, f"{path.name} has no cell tagged 'claim-check'"
    for cell in checks:
        assert cell["cell_type"] == "code" and "assert" in _source(cell)
        tags = cell.get("metadata", {}).get("tags", [])
        assert not {"remove-cell", "remove-input", "hide-input", "hide-cell"} & set(tags), "claim checks stay visible"


#: A cell tagged so shows the reader a model in plain PyTorch; a later cell of the chapter must prove, with
#: ``torch.testing.assert_close``, that it computes what the library's version computes.
PLAIN_PYTORCH_TAG = "plain-pytorch"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_defines_no_model_dataset_or_training_loop(path: Path):
    """Chapters ask resnet_lib; they do not build their own machinery (except a visible, checked teaching cell)."""
    cells = _cells(path)
    for i, cell in enumerate(cells):
        src = _source(cell)
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] == "code" and PLAIN_PYTORCH_TAG in tags:
            assert not {"remove-cell", "remove-input", "hide-input", "hide-cell"} & set(tags), (
                "teaching code stays visible"
            )
            later = [_source(c) for c in cells[i + 1 :] if c["cell_type"] == "code"]
            assert any("assert" in c and ("assert_close" in c or "rl.fit" in c) for c in later), (
                f"{path.name} cell {i}: plain-PyTorch code needs a later cell that compares it with the library"
            )
            continue
        if cell["cell_type"] == "code":
            for banned in BANNED_IN_CHAPTERS:
                assert not re.search(banned, src, re.M), f"{path.name} cell {i}: {banned!r}, move to resnet_lib"


def test_toc_lists_every_notebook_and_every_entry_exists():
    files = _toc_files()
    for entry in files:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".md", ".ipynb")), f"_toc.yml names missing {entry}"
    for path in NOTEBOOKS:
        assert f"book/{path.stem}" in files, f"{path.name} is not in _toc.yml"


def test_config_keeps_builds_honest():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["only_build_toc_files"] is True
    assert config["execute"]["execute_notebooks"] == "force", "the execution cache cannot see resnet_lib changes"
    assert config["execute"]["allow_errors"] is False
    assert isinstance(config["execute"]["timeout"], int)
    assert config["launch_buttons"]["colab_url"].startswith("https://colab.research.google.com")


def _ends_with_bare_glue(source: str) -> bool:
    """Whether a cell's last statement is a ``glue(...)`` call whose return value the page would print."""
    masked = re.sub(r"(?m)^(\s*)[%!].*$", r"\1pass", source)  # IPython magics and shell lines
    body = ast.parse(masked).body
    last = body[-1] if body else None
    return (
        isinstance(last, ast.Expr)
        and isinstance(last.value, ast.Call)
        and ast.unparse(last.value.func).endswith("glue")
    )


def test_bare_glue_is_detected():
    assert _ends_with_bare_glue('x = 1\nrl.glue("a", x)\n')
    assert not _ends_with_bare_glue('x = 1\n_ = rl.glue("a", x)\n')
    assert not _ends_with_bare_glue('if True:\n    %pip install x\nrl.glue("a", 1)\nprint(1)\n')


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_cell_prints_a_glued_value_by_accident(path: Path):
    """``rl.glue`` returns its value, so a cell ending in a bare call shows it under the cell (a stray
    ``'so by chapter 2's criterion...'`` in the page); ``_ = rl.glue(...)`` keeps the page clean."""
    stray = [
        i for i, cell in enumerate(_cells(path)) if cell["cell_type"] == "code" and _ends_with_bare_glue(_source(cell))
    ]
    assert not stray, f"{path.name}: code cells {stray} end with a bare glue call; write `_ = rl.glue(...)`"
