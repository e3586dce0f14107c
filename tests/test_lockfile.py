"""requirements.lock against requirements.txt: what `make install` installs is what requirements.txt asks for.

requirements.txt is edited by hand; requirements.lock is generated from it by `make lock` (uv pip compile
--universal --generate-hashes) and installed by `make install` with `pip install --require-hashes`. These tests
fail when the two disagree: a package of requirements.txt (or of pyproject.toml's dependencies, which
`pip install --no-deps -e .` leaves to the lock) missing from the lock, locked at a version its pin does not
allow, or not locked for the CI machine (Linux x86_64, Python 3.11); a lock entry that is not one exact
version; a lock entry without a sha256. The fix is `make lock`, then commit both files.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the book runs on Python 3.11
    tomllib = None

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements.txt"
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
FIX = "run `make lock` and commit requirements.lock with requirements.txt"

# The CI machine: `make install` runs there with Python 3.11 on Linux x86_64.
CI_MARKERS = {
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "implementation_name": "cpython",
    "python_version": "3.11",
}
CI_PLATFORM = "Linux x86_64 Python 3.11"
# Options a lock may carry besides its entries (none today); -e, -r, -c would escape --require-hashes.
LOCK_OPTIONS = ("--index-url", "--extra-index-url", "--find-links", "--no-binary", "--only-binary")
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})\b")


def ci_environment() -> dict[str, str]:
    env = dict(default_environment())
    env.update(CI_MARKERS)
    if not env["python_full_version"].startswith("3.11."):
        env["python_full_version"] = "3.11.0"
    return env


def requirements_of(text: str) -> list[Requirement]:
    """The requirements of a hand-written requirements file (comments and options skipped)."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"(^|\s)#.*", "", line).strip()
        if line and not line.startswith("-"):
            out.append(Requirement(line))
    return out


def logical_lines(text: str) -> list[str]:
    """Lines as pip reads them: a trailing backslash joins the next line; comments dropped."""
    out, current = [], ""
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*", "", raw).rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            out.append(current.strip())
        current = ""
    if current.strip():
        out.append(current.strip())
    return out


def lock_entries(text: str) -> tuple[list[tuple[Requirement, list[str]]], list[str]]:
    """(requirement, sha256s) per lock entry, and one problem per line that is not an exact, hashed pin."""
    entries, problems = [], []
    for line in logical_lines(text):
        if line.startswith("-"):
            if not line.startswith(LOCK_OPTIONS):
                problems.append(f"requirements.lock: option line {line!r} is not allowed in a hash-checked lock")
            continue
        hashes = HASH.findall(line)
        spec = HASH.sub("", line).strip()
        try:
            req = Requirement(spec)
        except InvalidRequirement as exc:
            problems.append(f"requirements.lock: {spec!r} is not a requirement ({exc})")
            continue
        pins = list(req.specifier)
        if req.url or len(pins) != 1 or pins[0].operator != "==" or "*" in pins[0].version:
            problems.append(f"requirements.lock: {spec!r} is not one exact version (name==version)")
        if not hashes:
            problems.append(f"requirements.lock: {req.name}{req.specifier} has no --hash=sha256:...")
        if "--hash" in HASH.sub("", line):
            problems.append(f"requirements.lock: {req.name} has a --hash that is not sha256:<64 hex digits>")
        entries.append((req, hashes))
    return entries, problems


def disagreements(requirements: list[Requirement], lock_text: str, what: str = "requirements.txt") -> list[str]:
    """Every way the lock fails the requirements, one line each (empty when they agree)."""
    entries, problems = lock_entries(lock_text)
    env = ci_environment()
    by_name: dict[str, list[Requirement]] = {}
    for req, _ in entries:
        by_name.setdefault(canonicalize_name(req.name), []).append(req)
    for want in requirements:
        if want.marker is not None and not want.marker.evaluate(env):
            continue
        locked = by_name.get(canonicalize_name(want.name), [])
        if not locked:
            problems.append(f"{what} asks for {want}, which requirements.lock does not list")
            continue
        for req in locked:
            version = next(iter(req.specifier)).version
            if not want.specifier.contains(version, prereleases=True):
                where = f" (for {req.marker})" if req.marker else ""
                problems.append(f"{what} asks for {want}; requirements.lock pins {req.name}=={version}{where}")
        if not any(req.marker is None or req.marker.evaluate(env) for req in locked):
            problems.append(f"{what} asks for {want}; requirements.lock has no {want.name} for {CI_PLATFORM}")
    return problems


def test_lock_matches_requirements_txt():
    problems = disagreements(requirements_of(REQUIREMENTS.read_text()), LOCK.read_text())
    assert not problems, f"requirements.txt and requirements.lock disagree ({FIX}):\n" + "\n".join(problems)


@pytest.mark.skipif(tomllib is None, reason="tomllib needs Python 3.11")
def test_lock_covers_the_projects_own_dependencies():
    """`make install` installs resnet_lib with --no-deps: pyproject.toml's dependencies must be in the lock."""
    deps = [Requirement(d) for d in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]]
    problems = disagreements(deps, LOCK.read_text(), what="pyproject.toml")
    assert not problems, f"pyproject.toml and requirements.lock disagree ({FIX}):\n" + "\n".join(problems)


def test_lock_pins_torch_as_requirements_txt_does():
    """The two pins the book's numbers depend on, read from the lock itself."""
    entries, _ = lock_entries(LOCK.read_text())
    pins = {canonicalize_name(r.name): str(r.specifier) for r, _ in entries if r.marker is None}
    assert pins.get("torch") == "==2.14.1" and pins.get("torchvision") == "==0.29.1", pins


# Planted mismatches: each must be reported, so the test above cannot pass on a lock that disagrees.
LOCK_OK = """\
# generated
torch==2.14.1 \\
    --hash=sha256:305a61f61f35f128579f299c5bd33d475f6a01c6307336139632e30856c4854d \\
    --hash=sha256:06c3ec25f3b497f9a73dc0c36f293f295cfe8d5584fd446238d9a501b30a66d5
    # via -r requirements.txt
numpy==2.4.6 ; python_full_version < '3.12' \\
    --hash=sha256:0000000000000000000000000000000000000000000000000000000000000001
numpy==2.5.5 ; python_full_version >= '3.12' \\
    --hash=sha256:0000000000000000000000000000000000000000000000000000000000000002
nvidia-cublas==13.1.1.3 ; sys_platform == 'linux' \\
    --hash=sha256:0000000000000000000000000000000000000000000000000000000000000003
"""
REQS_OK = "torch==2.14.1\nnumpy  # any\nnvidia-cublas>=13\n"


def test_planted_nothing_is_clean():
    assert disagreements(requirements_of(REQS_OK), LOCK_OK) == []


@pytest.mark.parametrize(
    ("reqs", "lock", "expected"),
    [
        # a pin in requirements.txt that the lock's exact version does not satisfy
        (REQS_OK.replace("torch==2.14.1", "torch==2.14.2"), LOCK_OK, "asks for torch==2.14.2; requirements.lock pins"),
        # a range that one fork of the lock (Python >= 3.12) falls outside
        (REQS_OK.replace("numpy", "numpy<2.5"), LOCK_OK, 'pins numpy==2.5.5 (for python_full_version >= "3.12")'),
        # a package added to requirements.txt without `make lock`
        (REQS_OK + "rich\n", LOCK_OK, "asks for rich, which requirements.lock does not list"),
        # a lock line without a hash
        (REQS_OK, LOCK_OK.replace("==13.1.1.3 ; sys_platform == 'linux' \\", "==13.1.1.3"), "has no --hash"),
        # a lock entry that is a range, not one version
        (REQS_OK, LOCK_OK.replace("torch==2.14.1 ", "torch>=2.14.1 "), "is not one exact version"),
        # an entry that does not apply on the CI machine
        (REQS_OK, LOCK_OK.replace("'linux'", "'darwin'"), f"has no nvidia-cublas for {CI_PLATFORM}"),
        # an editable or nested file would escape --require-hashes
        (REQS_OK, LOCK_OK + "-e .\n", "option line '-e .'"),
    ],
)
def test_planted_mismatch_is_reported(reqs, lock, expected):
    problems = disagreements(requirements_of(reqs), lock)
    assert any(expected in p for p in problems), problems
