"""The disk-cache model behind tests/powercut_fs.py: inodes with current and durable state,
path operations, and what a power cut leaves. No FUSE here, so it is tested on its own
(tests/test_powercut_fs.py) and the rules are in one place:

- file data and size are durable when the file is fsynced (fsync and fdatasync alike);
- a directory's entries (names created, renamed, removed) are durable when that directory
  is fsynced -- the strict POSIX rule (see powercut_fs.py's docstring for why);
- `durable_tree(rng)` is the state after a cut; with `rng`, a file whose unsynced changes are
  all appends keeps a random prefix of them, as the written bytes or as zeros.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import stat
import time
from pathlib import Path


class Node:
    """One inode: a regular file (current bytes, durable bytes) or a directory (current and
    durable entries)."""

    _next_ino = 2

    def __init__(self, is_dir: bool, mode: int):
        self.ino = Node._next_ino
        Node._next_ino += 1
        self.is_dir = is_dir
        self.mode = mode
        now = time.time_ns()
        self.atime = self.mtime = self.ctime = now
        if is_dir:
            self.entries: dict[str, Node] = {}
            self.synced_entries: dict[str, Node] = {}
            self.entries_dirty = False
        else:
            self.data = bytearray()
            self.synced = bytearray()
            # Lowest byte that may differ from `synced` (None: the file is in sync). Bytes
            # below it are equal in both, so a sync copies only from here on.
            self.dirty_lo: int | None = None

    # files
    def unsynced_bytes(self) -> int:
        return 0 if self.dirty_lo is None else max(len(self.data), len(self.synced)) - self.dirty_lo

    def _touch(self, lo: int) -> None:
        self.dirty_lo = lo if self.dirty_lo is None else min(self.dirty_lo, lo)
        self.mtime = self.ctime = time.time_ns()

    def write(self, offset: int, buf: bytes) -> int:
        size = len(self.data)
        self._touch(min(offset, size))
        if offset > size:
            self.data.extend(bytes(offset - size))
        self.data[offset:offset + len(buf)] = buf
        return len(buf)

    def truncate(self, length: int) -> None:
        size = len(self.data)
        self._touch(min(length, size))
        if length < size:
            del self.data[length:]
        else:
            self.data.extend(bytes(length - size))

    def sync(self) -> None:
        if self.is_dir:
            self.synced_entries = dict(self.entries)
            self.entries_dirty = False
        elif self.dirty_lo is not None:
            del self.synced[self.dirty_lo:]
            self.synced += self.data[self.dirty_lo:]
            self.dirty_lo = None

    def durable_bytes(self, rng: random.Random | None) -> bytes:
        """What this file holds after a cut; with `rng`, a pure append since the last sync is
        torn at a random byte (real bytes or zeros)."""
        if rng is None or self.dirty_lo is None or self.dirty_lo < len(self.synced) or len(self.data) <= len(self.synced):
            return bytes(self.synced)
        extra = rng.randint(0, len(self.data) - len(self.synced))
        tail = self.data[len(self.synced):len(self.synced) + extra] if rng.random() < 0.5 else bytes(extra)
        return bytes(self.synced) + bytes(tail)


class Model:
    """The file system's state, path-addressed, with no locking and no FUSE: what the FUSE
    layer calls, and what the model's own tests drive directly."""

    def __init__(self):
        self.root = Node(True, stat.S_IFDIR | 0o755)

    # -- namespace
    @staticmethod
    def _parts(path: str) -> list[str]:
        return [p for p in path.split("/") if p]

    def lookup(self, path: str) -> Node:
        node = self.root
        for part in self._parts(path):
            if not node.is_dir:
                raise OSError(errno.ENOTDIR, path)
            node = node.entries.get(part)
            if node is None:
                raise OSError(errno.ENOENT, path)
        return node

    def _parent(self, path: str) -> tuple[Node, str]:
        parts = self._parts(path)
        if not parts:
            raise OSError(errno.EBUSY, path)
        parent = self.lookup("/" + "/".join(parts[:-1]))
        if not parent.is_dir:
            raise OSError(errno.ENOTDIR, path)
        return parent, parts[-1]

    @staticmethod
    def _link(parent: Node, name: str, node: Node | None) -> None:
        if node is None:
            del parent.entries[name]
        else:
            parent.entries[name] = node
        parent.entries_dirty = True
        parent.mtime = parent.ctime = time.time_ns()

    def create(self, path: str, mode: int) -> Node:
        parent, name = self._parent(path)
        existing = parent.entries.get(name)
        if existing is not None:
            if existing.is_dir:
                raise OSError(errno.EISDIR, path)
            return existing
        node = Node(False, stat.S_IFREG | (mode & 0o7777))
        self._link(parent, name, node)
        return node

    def mkdir(self, path: str, mode: int) -> Node:
        parent, name = self._parent(path)
        if name in parent.entries:
            raise OSError(errno.EEXIST, path)
        node = Node(True, stat.S_IFDIR | (mode & 0o7777))
        self._link(parent, name, node)
        return node

    def unlink(self, path: str) -> None:
        parent, name = self._parent(path)
        node = parent.entries.get(name)
        if node is None:
            raise OSError(errno.ENOENT, path)
        if node.is_dir:
            raise OSError(errno.EISDIR, path)
        self._link(parent, name, None)

    def rmdir(self, path: str) -> None:
        parent, name = self._parent(path)
        node = parent.entries.get(name)
        if node is None:
            raise OSError(errno.ENOENT, path)
        if not node.is_dir:
            raise OSError(errno.ENOTDIR, path)
        if node.entries:
            raise OSError(errno.ENOTEMPTY, path)
        self._link(parent, name, None)

    def rename(self, old: str, new: str) -> None:
        src_parent, src_name = self._parent(old)
        node = src_parent.entries.get(src_name)
        if node is None:
            raise OSError(errno.ENOENT, old)
        dst_parent, dst_name = self._parent(new)
        target = dst_parent.entries.get(dst_name)
        if target is node:
            return
        if node.is_dir:
            # (a directory moved into itself: the kernel refuses that before we see it)
            if target is not None and (not target.is_dir or target.entries):
                raise OSError(errno.ENOTEMPTY if target.is_dir else errno.ENOTDIR, new)
        elif target is not None and target.is_dir:
            raise OSError(errno.EISDIR, new)
        self._link(src_parent, src_name, None)
        self._link(dst_parent, dst_name, node)

    # -- durability
    def sync_all(self) -> None:
        stack = [self.root]
        seen = set()
        while stack:
            node = stack.pop()
            if node.ino in seen:
                continue
            seen.add(node.ino)
            node.sync()
            if node.is_dir:
                stack.extend(node.entries.values())

    def durable_tree(self, rng: random.Random | None = None) -> dict:
        """{name: bytes (a file) or dict (a directory)}: what a cut leaves."""
        def walk(d: Node, on_path: set[int]) -> dict:
            out = {}
            for name, child in sorted(d.synced_entries.items()):
                if child.is_dir:
                    if child.ino not in on_path:  # a cycle only stale entries can make
                        out[name] = walk(child, on_path | {child.ino})
                else:
                    out[name] = child.durable_bytes(rng)
            return out
        return walk(self.root, {self.root.ino})

    def unsynced(self) -> dict:
        """Files with unsynced bytes and directories with unsynced entries, by current path."""
        files, dirs = {}, []

        def walk(d: Node, path: str) -> None:
            if d.entries_dirty:
                dirs.append(path or "/")
            for name, child in sorted(d.entries.items()):
                p = f"{path}/{name}"
                if child.is_dir:
                    walk(child, p)
                elif child.dirty_lo is not None:
                    files[p] = {"size": len(child.data), "synced": len(child.synced),
                                "unsynced_bytes": child.unsynced_bytes()}
        walk(self.root, "")
        return {"files": files, "dirs": dirs}

    # -- the backing directory
    def load(self, backing: Path) -> None:
        """Takes `backing`'s contents as current and durable state."""
        def walk(path: Path, d: Node) -> None:
            for entry in sorted(os.scandir(path), key=lambda e: e.name):
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    child = Node(True, st.st_mode)
                    walk(Path(entry.path), child)
                elif stat.S_ISREG(st.st_mode):
                    child = Node(False, st.st_mode)
                    child.data = bytearray(Path(entry.path).read_bytes())
                    child.synced = bytearray(child.data)
                else:
                    continue  # only files and directories are modelled
                child.mtime = child.ctime = st.st_mtime_ns
                d.entries[entry.name] = child
            d.synced_entries = dict(d.entries)
        walk(backing, self.root)


def write_tree(backing: Path, tree: dict) -> None:
    """Replaces everything in `backing` by `tree` (see Model.durable_tree), fsynced."""
    for entry in os.scandir(backing):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)

    def put(path: Path, t: dict) -> None:
        for name, v in t.items():
            p = path / name
            if isinstance(v, dict):
                p.mkdir()
                put(p, v)
            else:
                with open(p, "wb") as f:
                    f.write(v)
                    os.fsync(f.fileno())
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    put(backing, tree)


def tree_summary(tree: dict, prefix: str = "") -> dict:
    """{path: size} of every file in a durable tree (directories end with '/')."""
    out = {}
    for name, v in tree.items():
        p = f"{prefix}/{name}"
        if isinstance(v, dict):
            out[p + "/"] = None
            out.update(tree_summary(v, p))
        else:
            out[p] = len(v)
    return out
