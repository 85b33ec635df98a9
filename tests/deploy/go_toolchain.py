"""A Go toolchain for building the test tools written in Go (actionlint), on a machine without
one: the `go` on PATH (or in /usr/local/go, where Go's own archive installs) when it is recent
enough, else the official toolchain from the Go module proxy, the module `golang.org/toolchain`
that Go's own toolchain switching (`GOTOOLCHAIN`) downloads, pinned by version and sha256 and
unpacked once into .run/tools/go-<version>."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
import urllib.request
import zipfile
from pathlib import Path

GO_VERSION = "1.26.8"
_MODULE_VERSION = f"v0.0.1-go{GO_VERSION}.linux-amd64"
_URL = f"https://proxy.golang.org/golang.org/toolchain/@v/{_MODULE_VERSION}.zip"
# The zip's sha256 (72 MB), taken from a copy that `go mod download` had verified against the
# checksum database (sum.golang.org: h1:ZOmGe1OnfREDMIdb1Qi4G9JSuDPBLGExZMQ4nis1RXM=).
_SHA256 = "30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7"
# Every file of a module zip sits under <module>@<version>/.
_PREFIX = f"golang.org/toolchain@{_MODULE_VERSION}/"
_DOWNLOAD_TIMEOUT_S = 60  # per read from the proxy, not for the whole file


class GoUnavailable(RuntimeError):
    """No usable Go here, and the pinned toolchain could not be had."""


def go_command(minimum: tuple[int, int], tools: Path) -> tuple[str, dict[str, str]]:
    """The `go` binary to build with and the variables it needs: the machine's when it is at
    least `minimum` (major, minor), else the pinned toolchain under `tools` (downloaded and
    unpacked the first time) with GOTOOLCHAIN=local, so that it never fetches another one."""
    path = os.environ.get("PATH", "")
    found = shutil.which("go", path=f"{path}:/usr/local/go/bin")
    if found and _version(found) >= minimum:
        return found, {}
    go = tools / f"go-{GO_VERSION}" / "bin" / "go"
    if not go.exists():
        _install(tools)
    return str(go), {"GOTOOLCHAIN": "local"}


def _version(go: str) -> tuple[int, int]:
    """(major, minor) of a `go` binary; (0, 0) when it does not answer (a broken install)."""
    try:
        out = subprocess.run(
            [go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return (0, 0)
    match = re.match(r"go(\d+)\.(\d+)", out.strip())
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _install(tools: Path) -> None:
    """Download, check and unpack the pinned toolchain into tools/go-<version>. The directory
    appears whole or not at all (unpacked beside it, then renamed), so an interrupted run
    leaves nothing that a later one would take for a toolchain."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise GoUnavailable(
            f"no Go >= the one needed on PATH, and the pinned toolchain is for linux-amd64 only"
            f" (this is {platform.system()}-{platform.machine()}): install Go {GO_VERSION}"
        )
    tools.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".go-", dir=tools) as tmp:
        archive = Path(tmp) / "toolchain.zip"
        _download(archive)
        unpacked = Path(tmp) / "go"
        _unpack(archive, unpacked)
        try:
            unpacked.rename(tools / f"go-{GO_VERSION}")
        except OSError:
            # another run unpacked it meanwhile: keep that one
            if not (tools / f"go-{GO_VERSION}" / "bin" / "go").exists():
                raise


def _download(archive: Path) -> None:
    """The pinned zip from the Go module proxy into `archive`, refused unless its sha256 is
    the pinned one."""
    digest = hashlib.sha256()
    try:
        with (
            urllib.request.urlopen(_URL, timeout=_DOWNLOAD_TIMEOUT_S) as response,
            archive.open("wb") as out,
        ):
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        raise GoUnavailable(f"cannot download the Go toolchain from {_URL}: {exc}") from exc
    if digest.hexdigest() != _SHA256:
        raise GoUnavailable(f"{_URL} has sha256 {digest.hexdigest()}, pinned {_SHA256}: refused")


def _unpack(archive: Path, dest: Path) -> None:
    """The zip's files without their <module>@<version>/ prefix, with the modes it records;
    what is under bin/ and pkg/tool/ executable whatever it records."""
    dest.mkdir()
    root = dest.resolve()
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if not info.filename.startswith(_PREFIX):
                raise GoUnavailable(f"unexpected entry {info.filename!r} in the toolchain zip")
            name = info.filename[len(_PREFIX) :]
            if not name:  # the prefix's own directory entry
                continue
            target = dest / name
            if ".." in Path(name).parts or not target.resolve().is_relative_to(root):
                raise GoUnavailable(f"unsafe entry {info.filename!r} in the toolchain zip")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777 or 0o644
            if name.startswith(("bin/", "pkg/tool/")):  # as Go's own toolchain switch does
                mode |= 0o111
            target.chmod(mode)
    if not os.access(dest / "bin" / "go", os.X_OK):
        raise GoUnavailable("the toolchain zip has no executable bin/go")
