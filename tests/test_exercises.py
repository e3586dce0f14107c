"""Exercises are "predict, then check": nothing on the page shows an answer before the reader opens it.

From a chapter's ``## Exercises`` heading to its end, every code cell is tagged ``hide-cell`` (myst-nb
folds its input *and* its output behind one button, so a printed answer never sits above the question's
solution), and every solution is a dropdown admonition titled ``Solution to exercise N``, numbered
1, 2, ... in order, each with an answer: text of its own, or one glued from its hidden cell.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(p for p in BOOK.glob("[0-9][0-9]_*.ipynb"))
HEADING = re.compile(r"^#+ Exercises\s*$", re.M)
ADMONITION = re.compile(r"^(`{3,}|:{3,})\{admonition\}\s*(?P<title>[^\n]*)\n(?P<body>.*?)^\1\s*$", re.M | re.S)
SOLUTION_TITLE = re.compile(r"^Solution to exercise (\d+)\b")


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def exercise_problems(cells: list[dict]) -> list[str]:
    """What breaks the convention in a notebook's cells (empty when it holds)."""
    starts = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and HEADING.search(_source(c))]
    if not starts:
        return ["no '## Exercises' heading"]
    problems, numbers = [], []
    for i, cell in enumerate(cells[starts[0] :], start=starts[0]):
        source = _source(cell)
        if cell["cell_type"] == "code":
            tags = cell.get("metadata", {}).get("tags", [])
            if "hide-cell" not in tags:
                problems.append(f"cell {i}: a code cell among the exercises must be tagged hide-cell, has {tags}")
            continue
        text = source[HEADING.search(source).end() :] if i == starts[0] else source
        for match in ADMONITION.finditer(text):
            title, body = match.group("title").strip(), match.group("body")
            if not title.lower().startswith("solution"):
                continue
            number = SOLUTION_TITLE.match(title)
            if not number:
                problems.append(f"cell {i}: a solution's title must read 'Solution to exercise N', got {title!r}")
                continue
            numbers.append(int(number.group(1)))
            if not re.search(r"^:class:.*\bdropdown\b", body, re.M):
                problems.append(f"cell {i}: {title!r} is not a dropdown")
            prose = re.sub(r"^:\w+:.*$", "", body, flags=re.M).strip()
            if "{glue" not in prose and len(prose.split()) < 15:  # a glued answer is written by its hidden cell
                problems.append(f"cell {i}: {title!r} has fewer than 15 words; a solution answers its question")
    if not numbers:
        problems.append("no 'Solution to exercise N' admonition")
    elif numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"solutions are numbered {numbers}, expected 1..{len(numbers)} in order")
    return problems


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_exercises_hide_their_answers(path: Path):
    problems = exercise_problems(json.loads(path.read_text())["cells"])
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def _markdown(text: str) -> dict:
    return {"cell_type": "markdown", "source": text}


def _code(tags: list[str]) -> dict:
    return {"cell_type": "code", "source": "print(1)", "metadata": {"tags": tags}}


def test_the_convention_check_catches_what_it_names():
    answer = "The number falls because each layer multiplies the gradient by a factor below one, forty times over."
    good = [
        _markdown("## Exercises\n\n**1.** Predict, then check."),
        _code(["hide-cell"]),
        _markdown(f"```{{admonition}} Solution to exercise 1\n:class: dropdown\n{answer}\n```"),
    ]
    assert exercise_problems(good) == []
    shown = [good[0], _code(["hide-input"]), good[2]]
    assert "tagged hide-cell" in exercise_problems(shown)[0]
    open_solution = [good[0], good[1], _markdown(f"```{{admonition}} Solution to exercise 1\n{answer}\n```")]
    assert "not a dropdown" in exercise_problems(open_solution)[0]
    empty = [good[0], good[1], _markdown("```{admonition} Solution to exercise 1\n:class: dropdown\nSee above.\n```")]
    assert "fewer than 15 words" in exercise_problems(empty)[0]
    skipped = [*good, _markdown(f"```{{admonition}} Solution to exercise 3\n:class: dropdown\n{answer}\n```")]
    assert "numbered [1, 3]" in exercise_problems(skipped)[0]
    assert exercise_problems(good[1:]) == ["no '## Exercises' heading"]
