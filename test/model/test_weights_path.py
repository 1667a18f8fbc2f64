"""Relative weights paths resolve from the working directory first, then the package."""

from __future__ import annotations

from pathlib import Path

from togethernet_ros.model.weights_path import resolve_weights_path

REPO = Path(__file__).resolve().parents[2]
FIXTURE = Path("test/fixtures/state_dict_spec.json")


def test_package_relative_path_resolves_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_weights_path(FIXTURE) == REPO / FIXTURE


def test_working_directory_wins_over_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    local = tmp_path / FIXTURE
    local.parent.mkdir(parents=True)
    local.write_text("{}")
    assert resolve_weights_path(FIXTURE) == local.resolve()


def test_missing_file_keeps_what_the_user_wrote(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_weights_path("models/absent.pt") == Path("models/absent.pt")
    assert resolve_weights_path(tmp_path / "absent.pt") == tmp_path / "absent.pt"
