"""Colab's install path: the notebooks' first cell installs ``resnet_lib`` from the repository.

The cell is run as Colab runs it (IPython, ``google.colab`` imported) in a fresh virtual
environment, with its repository URL (``_config.yml``'s ``repository.url``) pointed at a
local clone of this repository. Colab comes with torch, torchvision and IPython installed;
here torch and torchvision (and what they need) are those of the build's venv, seen by the
fresh venv through a ``.pth`` file, because installing their CUDA wheels afresh would take
6 GB and minutes. Everything else the package needs (matplotlib, tqdm, ipywidgets, ...) and
the package itself are installed by the cell's ``%pip install``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
COLAB_PREINSTALLED = ("torch", "torchvision")
pytestmark = pytest.mark.slow


def _first_code_cell(path: Path) -> str:
    cell = next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _closure(names: tuple[str, ...]) -> list[metadata.Distribution]:
    """The installed distributions ``names`` need to import, themselves included."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional requirement that is not installed
        seen[key] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return list(seen.values())


def _link_preinstalled(target: Path) -> list[str]:
    """Symlink the top-level files of torch, torchvision and their requirements into ``target``."""
    target.mkdir()
    names = []
    for dist in _closure(COLAB_PREINSTALLED):
        site = Path(dist.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            source = site / top
            if source.exists() and not (target / top).exists() and not top.endswith(".pth"):
                (target / top).symlink_to(source)
        names.append(dist.metadata["Name"])
    return sorted(names)


def test_the_colab_install_cell_installs_resnet_lib_into_a_fresh_venv(tmp_path):
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    cell = _first_code_cell(ROOT / "book" / "01_depth_and_features.ipynb")
    assert f'"resnet_lib @ git+{url}"' in cell, "the install cell installs from _config.yml's repository"
    started = time.monotonic()

    clone = tmp_path / "resnet-book"  # stands in for the published repository (its committed HEAD)
    subprocess.run(["git", "clone", "--quiet", ROOT.as_uri(), str(clone)], check=True)
    # pip clones with --filter=blob:none; served from a local clone that would fetch every blob in a process of its
    # own (thousands of git-upload-packs when the clone was shallow). Refusing filters makes it one full clone.
    subprocess.run(["git", "-C", str(clone), "config", "uploadpack.allowFilter", "false"], check=True)
    venv = tmp_path / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    try:
        python = venv / "bin" / "python"
        site = Path(
            subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
            .decode()
            .strip()
        )
        preinstalled = _link_preinstalled(tmp_path / "colab-preinstalled")
        (site / "colab_preinstalled.pth").write_text(f"{tmp_path / 'colab-preinstalled'}\n")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RESNET_BOOK_", "VIRTUAL_ENV", "PYTHON"))},
            "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
            "OMP_NUM_THREADS": "1",
            "MPLBACKEND": "Agg",
            "HOME": str(tmp_path / "home"),  # the reader's results cache and config start empty
            "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")),
        }
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        # Colab has IPython and a recent pip (pip 23, which venv brings, rejects git+file:/// URLs)
        subprocess.run([*pip, "ipython", "pip>=24"], check=True, env=env, cwd=tmp_path, timeout=900)

        stub = tmp_path / "stub" / "google" / "colab"
        stub.mkdir(parents=True)
        (stub / "__init__.py").write_text('"""Stands in for Colab\'s module: the install cell looks for it."""\n')
        local = cell.replace(f"git+{url}", f"git+{clone.as_uri()}")
        assert local != cell
        code = (
            "import sys\n"
            f"sys.path.insert(0, {str(tmp_path / 'stub')!r})\n"
            "import google.colab\n"
            f"{local}\n"
            "print('resnet_lib from', rl.__file__)\n"
        )
        script = tmp_path / "colab_cell.ipy"
        script.write_text(code)
        result = subprocess.run(
            [str(venv / "bin" / "ipython"), "--quick", "--no-banner", str(script)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        elapsed = time.monotonic() - started
        output = result.stdout + result.stderr
        print(f"fresh-venv Colab install: {elapsed:.0f} s; preinstalled (linked): {', '.join(preinstalled)}")
        print(output)
        assert result.returncode == 0, output
        assert re.search(r"The ResNet Book, profile 'default' \(\$RESNET_BOOK_PROFILE unset: the default\)", output)
        assert f"Results cache: {tmp_path / 'home' / '.cache' / 'resnet_book' / 'results'} (the default" in output
        assert f"resnet_lib from {site}/resnet_lib/__init__.py" in output, "imported from the fresh venv"
        installed = subprocess.check_output([str(python), "-m", "pip", "list", "--format=json"], env=env)
        names = {d["name"].lower() for d in json.loads(installed)}
        assert {"resnet_lib", "matplotlib", "ipywidgets", "tqdm"} <= {n.replace("-", "_") for n in names} | names
        sizes = subprocess.check_output(["du", "-sh", str(venv)]).decode().split()[0]
        print(f"fresh venv on disk: {sizes} (torch and torchvision linked, not copied)")
    finally:
        shutil.rmtree(venv, ignore_errors=True)
