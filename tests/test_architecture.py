"""The library's import direction (resnet_lib/README.md): a module imports only what is to its left.

profile -> data -> models -> training -> results/runs -> measure -> chapters -> plots -> notebook, fill_cache, reproduce
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "resnet_lib"

#: Layer of every top-level module or package of resnet_lib, left (0) to right.
LAYERS: dict[str, int] = {
    "paper": 0,
    "recipe": 0,
    "threads": 0,
    "profiles": 1,
    "data": 2,
    "models": 3,
    "results": 4,
    "training": 4,
    "distributed": 5,
    "runs": 5,
    "full_results": 5,
    "measure": 6,
    "chapters": 7,
    "plots": 8,
    "notebook": 9,
    "reproduce": 9,
    "fill_cache": 9,
    "__init__": 9,
}


def _unit(module: str) -> str:
    """``resnet_lib.measure.gradients`` -> ``measure``; ``resnet_lib`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path, package: Path) -> str:
    """``<package>/measure/gradients.py`` -> ``resnet_lib.measure.gradients``."""
    parts = list(path.relative_to(package).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["resnet_lib", *parts])


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported resnet_lib module) for every import in ``path``, also inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "resnet_lib":
            if node.module == "resnet_lib":  # from resnet_lib import runs, paper
                found += [(node.lineno, f"resnet_lib.{a.name}") for a in node.names]
            else:
                found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "resnet_lib"]
    return found


def violations(package: Path = PACKAGE) -> list[str]:
    """Every import that points right, or from one chapter module to another, as one line each."""
    problems = []
    for path in sorted(package.rglob("*.py")):
        here = _module_name(path, package)
        unit = _unit(here)
        if unit not in LAYERS:
            problems.append(f"{path.relative_to(package.parent)}: module {unit!r} has no layer in LAYERS")
            continue
        for line, target in imports_of(path):
            there = _unit(target)
            if there not in LAYERS:
                continue  # a name imported from the package root, e.g. ``from resnet_lib import paper``
            where = f"{path.relative_to(package.parent)}:{line} imports {target}"
            if LAYERS[there] > LAYERS[unit]:
                problems.append(f"{where} ({unit} is left of {there})")
            elif unit == there == "chapters" and target.split(".")[2] != here.split(".")[2]:
                problems.append(f"{where} (chapter modules never import each other)")
    return problems


def test_every_module_imports_only_what_is_to_its_left():
    found = {re.sub(r":\d+ imports ", " imports ", problem.split(" (")[0]) for problem in violations()}
    assert not found, sorted(found)


def test_every_module_of_the_package_has_a_layer():
    units = {p.name if p.is_dir() else p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    units.discard("__pycache__")
    assert units <= set(LAYERS), units - set(LAYERS)


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        ("measure/extra.py", "from resnet_lib.plots.style import titled", "measure is left of plots"),
        ("chapters/extra.py", "from resnet_lib.chapters.degradation import data_sentence", "never import each other"),
        ("plots/extra.py", "from resnet_lib.notebook import glue", "plots is left of notebook"),
        ("models/extra.py", "from resnet_lib import training", "models is left of training"),
    ],
)
def test_an_import_that_points_right_is_found(tmp_path, module, line, expected):
    package = tmp_path / "resnet_lib"
    for unit in ("measure", "chapters", "plots", "models"):
        (package / unit).mkdir(parents=True)
    (package / module).write_text(f"{line}\n")
    (package / "chapters" / "degradation.py").write_text("")
    (problem,) = violations(package)
    assert expected in problem and module in problem
