"""Unpack a model tarball safely and show what is in it.

The tarball comes from `helpers.export.write_tar` (members ``model/<file>``), but a
learner may also be handed one by someone else, so extraction trusts nothing: a
crafted archive must not write outside ``model/`` nor plant links or devices.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

MAX_ARCHIVE_BYTES = 4 * 1024**3


class UnsafeArchive(ValueError):
    """A tarball member that could write outside the target folder or plant a link/device."""


def check_member(member: tarfile.TarInfo) -> None:
    """Allow only plain files and folders under ``model/``, with no absolute or ``..`` path."""
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"refusing archive member {name!r}: absolute path")
    if ".." in parts or "\\" in name:
        raise UnsafeArchive(f"refusing archive member {name!r}: path leaves the target folder")
    if member.issym() or member.islnk():
        raise UnsafeArchive(f"refusing archive member {name!r}: links are not allowed")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchive(f"refusing archive member {name!r}: devices and FIFOs are not allowed")
    if not parts or parts[0] != "model" or (len(parts) == 1 and not member.isdir()):
        raise UnsafeArchive(f"refusing archive member {name!r}: only files under model/ are allowed")


def safe_extract(tar_path: str | Path, dest_dir: str | Path,
                 max_bytes: int = MAX_ARCHIVE_BYTES) -> Path:
    """Unpack ``<task>-model.tar`` into ``dest_dir/model`` and return ``dest_dir/model``.

    Every member is checked before anything is written (one bad member refuses the
    whole archive), extraction also uses tarfile's ``data`` filter as a second
    guard, and the result is renamed into place so a failure leaves no half model.
    Only ``model/`` is replaced (a README.md in it is kept); nothing else in
    ``dest_dir`` is touched (work happens in a unique hidden temp folder there).
    """
    dest_dir = Path(dest_dir).resolve()
    target = dest_dir / "model"
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise FileExistsError(f"{target} exists and is not a folder; move it away first")
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            check_member(member)
        if sum(m.size for m in members) > max_bytes:
            raise UnsafeArchive(f"archive unpacks to more than {max_bytes} bytes")
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_dir))
        try:
            tar.extractall(staging, members=members, filter="data")
            if not (staging / "model" / "config.json").is_file():
                raise UnsafeArchive(f"{tar_path} holds no model/config.json: not a model tarball")
            swap_folder(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def swap_folder(staging: Path, target: Path) -> None:
    """Rename ``staging/model`` to ``target``; the old target goes into staging (deleted
    with it), so no other name beside ``target`` is ever used. A README.md is kept."""
    new, old = staging / "model", staging / "previous-model"
    if target.exists():
        if (target / "README.md").is_file():
            shutil.copy2(target / "README.md", new / "README.md")
        target.rename(old)
    try:
        new.rename(target)
    except OSError:
        if old.exists():
            old.rename(target)
        raise


def human_size(size: int) -> str:
    """Bytes as B/KB/MB/GB with 1024 steps, as file managers show them."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def file_tree(folder: str | Path) -> str:
    """An indented tree of a folder with file sizes, so learners see what ships."""
    root = Path(folder)
    lines = [f"{root.name}/"]

    def walk(path: Path, prefix: str) -> None:
        entries = sorted(path.iterdir(), key=lambda p: (not p.is_dir() or p.is_symlink(), p.name))
        for i, entry in enumerate(entries):
            last = i == len(entries) - 1
            branch, indent = ("└── ", "    ") if last else ("├── ", "│   ")
            if entry.is_dir() and not entry.is_symlink():
                lines.append(f"{prefix}{branch}{entry.name}/")
                walk(entry, prefix + indent)
            else:
                lines.append(f"{prefix}{branch}{entry.name}  ({human_size(entry.lstat().st_size)})")

    walk(root, "")
    return "\n".join(lines)


def folder_size_mb(path: str | Path) -> float:
    """Size on disk of a file, or of the model files in a folder (what you ship), in MB."""
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6
