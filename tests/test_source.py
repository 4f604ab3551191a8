"""Which code a run measured: the commit of a git checkout, whether its tracked files changed, and
what a copy without ``.git`` records instead."""

from __future__ import annotations

from perfgate.records.source import source_revision

from .test_bisect import git


def test_a_checkout_records_its_commit_and_whether_its_tracked_files_changed(tmp_path):
    git(tmp_path, "init", "--quiet")
    (tmp_path / "model.py").write_text("SIZE = 1\n")
    git(tmp_path, "add", "model.py")
    git(tmp_path, "commit", "--quiet", "-m", "one")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert source_revision(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "notes.txt").write_text("untracked files do not change the code measured\n")
    assert source_revision(tmp_path)["dirty"] is False
    (tmp_path / "model.py").write_text("SIZE = 2\n")
    assert source_revision(tmp_path) == {"commit": head, "dirty": True}


def test_a_tree_without_git_records_why_it_has_no_commit(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no enclosing repository found
    assert source_revision(tmp_path) == {"commit": None, "why": f"{tmp_path} is not a git checkout"}
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all
    assert source_revision(tmp_path)["why"].startswith("git did not answer")
