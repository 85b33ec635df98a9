"""A deploy names the running actors created with other settings than its own (cluster/job_env.py),
including actors of a version before the fingerprint, and does not stop over them."""

from __future__ import annotations

from typing import Any

import pytest
import ray

from cluster import deploy


class _Method:
    def __init__(self, value: str) -> None:
        self.value = value

    def options(self, **_: Any) -> _Method:
        return self

    def remote(self) -> str:
        return self.value


def _no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray's calls over the stand-ins: each handle's answer is its reference."""
    monkeypatch.setattr(ray, "get", lambda ref, timeout=None: ref)
    monkeypatch.setattr(
        ray, "wait", lambda refs, num_returns, timeout: (refs[:num_returns], refs[num_returns:])
    )


class _Handle:
    def __init__(self, value: str) -> None:
        self.deployed_with = _Method(value)


class _OldHandle:
    """An actor of an older version: Ray's handle has no such method."""


def test_actors_of_other_settings_and_older_versions_are_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_ray(monkeypatch)
    handles: dict[str, Any] = {"relay": _Handle("new"), "shipping": _Handle("old")}
    handles["notification"] = _OldHandle()
    deploy._say_stale(handles, "new")
    said = capsys.readouterr().out
    assert "actors: 2 of 3 run with the settings of an earlier deploy" in said
    assert "notification, shipping" in said and "relay" not in said.split("(")[1]


def test_only_older_versions_need_no_call(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_ray(monkeypatch)
    deploy._say_stale({"relay": _OldHandle()}, "new")
    said = capsys.readouterr().out
    assert "actors: 1 of 1 run with the settings of an earlier deploy (relay)" in said


def test_actors_of_this_deploys_settings_are_not_mentioned(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_ray(monkeypatch)
    deploy._say_stale({"relay": _Handle("new"), "shipping": _Handle("new")}, "new")
    assert capsys.readouterr().out == ""
