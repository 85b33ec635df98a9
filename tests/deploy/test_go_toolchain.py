"""tests/deploy/go_toolchain.py, which finds or fetches the Go that builds actionlint: the
machine's Go when it is recent enough, else the pinned toolchain from the Go module proxy,
checked and unpacked once. Offline: the download is replaced where one would happen (the real
one is what test_compose_and_ci.py's actionlint runs through on a machine without Go)."""

from __future__ import annotations

import io
import stat
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.deploy import go_toolchain as gt


def _fake_go(folder: Path, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    go = folder / "go"
    go.write_text(f'#!/bin/sh\n[ "$*" = "env GOVERSION" ] && echo {version}\n')
    go.chmod(0o755)
    return go


def _no_download(_: Path) -> None:
    raise AssertionError("nothing is downloaded here")


def test_a_recent_go_on_path_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    go = _fake_go(tmp_path / "bin", "go1.26.1")
    monkeypatch.setenv("PATH", f"{go.parent}:/usr/bin:/bin")
    monkeypatch.setattr(gt, "_download", _no_download)
    assert gt.go_command((1, 25), tmp_path / "tools") == (str(go), {})


def test_an_old_go_gives_way_to_the_pinned_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old Go (Debian 12's golang-go is 1.19) cannot build a module that asks for 1.25; an
    unpacked toolchain is used again without a download, and never switches itself."""
    old = _fake_go(tmp_path / "bin", "go1.19.8")
    pinned = _fake_go(tmp_path / "tools" / f"go-{gt.GO_VERSION}" / "bin", f"go{gt.GO_VERSION}")
    monkeypatch.setenv("PATH", f"{old.parent}:/usr/bin:/bin")
    monkeypatch.setattr(gt, "_download", _no_download)
    assert gt.go_command((1, 25), tmp_path / "tools") == (str(pinned), {"GOTOOLCHAIN": "local"})


def test_the_zip_is_unpacked_without_its_prefix_and_with_its_modes(tmp_path: Path) -> None:
    archive = tmp_path / "toolchain.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data, mode in (
            ("bin/go", b"#!/bin/sh\n", 0o755),
            ("pkg/tool/linux_amd64/compile", b"", 0o600),  # executable anyway
            ("src/fmt/print.go", b"package fmt\n", 0o644),
        ):
            info = zipfile.ZipInfo(gt._PREFIX + name)
            info.external_attr = (stat.S_IFREG | mode) << 16
            zf.writestr(info, data)
    gt._unpack(archive, tmp_path / "go")
    assert (tmp_path / "go" / "bin" / "go").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "go" / "pkg" / "tool" / "linux_amd64" / "compile").stat().st_mode & 0o111
    assert (tmp_path / "go" / "src" / "fmt" / "print.go").read_text() == "package fmt\n"


@pytest.mark.parametrize("name", ["elsewhere/bin/go", f"{gt._PREFIX}../../escaped"])
def test_an_entry_outside_the_toolchain_is_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "toolchain.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(name, b"")
    with pytest.raises(gt.GoUnavailable, match="entry"):
        gt._unpack(archive, tmp_path / "go")
    assert not (tmp_path / "escaped").exists()


def test_a_download_with_another_sha256_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def urlopen(url: str, timeout: float) -> io.BytesIO:
        assert url.startswith("https://proxy.golang.org/golang.org/toolchain/@v/")
        return io.BytesIO(b"not the toolchain")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(gt.GoUnavailable, match="pinned"):
        gt._download(tmp_path / "toolchain.zip")
