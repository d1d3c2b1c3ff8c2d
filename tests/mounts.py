"""Filesystems mounted over log directories, for the disk-fault tests (needs root: CAP_SYS_ADMIN).

`mount_tmpfs(path, size_mb)` makes `path` a small disk of its own (it fills up quickly);
`read_only_over(path)` mounts a read-only tmpfs over `path` for the duration of a `with`
block: the broker's directory probe (a file created, written, fsynced and removed every
log.dir.failure.probe.interval.ms) fails with EROFS, and after three failures in a row the
broker takes the directory offline. A remount read-only of a filesystem the broker has files
open on for writing is refused (EBUSY), hence a new filesystem on top. The files the broker
already has open stay on the filesystem underneath, and reappear there once unmounted.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path


def can_mount() -> bool:
    """Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN, not in a locked-down container)."""
    if os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as d:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "lantern-probe", d], capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", d], check=False)
        return ok


CANNOT_MOUNT = "mounting a tmpfs over a log directory needs root (CAP_SYS_ADMIN)"


def mount_tmpfs(path: Path, size_mb: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "lantern-test-disk", str(path)], check=True)


def umount(path: Path) -> None:
    """Lazy unmount (a process may still have the directory as its cwd); never raises."""
    subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def read_only_over(path: Path):
    """A read-only tmpfs mounted over `path` inside the block, always unmounted on the way out."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "lantern-test-ro", str(path)], check=True)
    try:
        yield path
    finally:
        umount(path)
