"""Every page says what made it: the book's version, the commit, the date, the profile and the data."""

from __future__ import annotations

import re
import subprocess

import resnet_lib
from resnet_lib import notebook


def test_the_stamp_names_version_commit_date_profile_and_data(monkeypatch, tmp_path):
    monkeypatch.setenv("RESNET_BOOK_DATASET", "standin")
    monkeypatch.setenv("RESNET_BOOK_PROFILE", "ci")
    text = notebook.stamp()
    assert f"The ResNet Book {resnet_lib.__version__} (commit " in text
    assert re.search(r"commit ([0-9a-f]{10}( \+ local changes)?|not a checkout)\)", text), text
    assert re.search(r"executed \d{4}-\d\d-\d\d \d\d:\d\d UTC", text), text
    assert "profile 'ci'" in text and "the procedural stand-in ($RESNET_BOOK_DATASET=standin)" in text


def test_real_photos_are_named_by_their_folder(monkeypatch, tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    monkeypatch.setenv("RESNET_BOOK_DATA", str(tmp_path))
    monkeypatch.setenv("RESNET_BOOK_DATASET", "auto")
    assert notebook.data_source() == f"CIFAR-10 from {tmp_path / 'cifar-10-batches-py'}"
    monkeypatch.setenv("RESNET_BOOK_DATA", str(tmp_path / "empty"))
    assert notebook.data_source().startswith("CIFAR-10, downloaded into ")


def test_without_git_the_commit_is_said_to_be_unknown(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert notebook.source_commit() == "not a checkout"


def test_the_version_is_written_once():
    """pyproject.toml takes the version from resnet_lib.__version__ (no second copy to forget)."""
    from pathlib import Path

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'version = { attr = "resnet_lib.__version__" }' in pyproject
    assert not re.search(r'^version = "', pyproject, re.M)


def test_citation_and_licence_name_this_version():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert f'version: "{resnet_lib.__version__}"' in (root / "CITATION.cff").read_text()
    assert "MIT License" in (root / "LICENSE").read_text() and "CC BY 4.0" in (root / "LICENSE").read_text()
    assert "BSD" in (root / "NOTICES.md").read_text() and "Apache License 2.0" in (root / "NOTICES.md").read_text()
