"""``source_commit``: the commit of a checkout, marked dirty by changes to tracked files outside ``exclude``."""

import subprocess

import pytest

from physinv.core.provenance import source_commit


def git(folder, *args):
    return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "figures").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "figures" / "a.png").write_bytes(b"png")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    return tmp_path


def test_clean_checkout_gives_the_commit(repo):
    assert source_commit(repo) == git(repo, "rev-parse", "HEAD")


def test_changed_tracked_file_marks_it_dirty_unless_excluded(repo):
    head = git(repo, "rev-parse", "HEAD")
    (repo / "figures" / "a.png").write_bytes(b"redrawn")
    assert source_commit(repo) == head + "+dirty"
    assert source_commit(repo / "figures", exclude=("figures",)) == head  # the path is from the root
    (repo / "code.py").write_text("x = 2\n")
    assert source_commit(repo, exclude=("figures",)) == head + "+dirty"


def test_outside_a_checkout_is_none(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # git must not find a repository above
    assert source_commit(tmp_path) is None
