"""Claim: tests/powercut_fs.py keeps exactly what was made durable across a power cut --
file data on fsync/fdatasync of the file, directory entries (create, rename, unlink) on
fsync of the directory -- and loses the rest; a torn cut keeps a random prefix of an
unsynced append; a clean unmount keeps everything. The model is checked on its own (no
FUSE), then through a real mount with real system calls."""

from __future__ import annotations

import errno
import os
import random
import threading
import time
from pathlib import Path

import pytest

from powercut_model import Model

# ------------------------------------------------------------------ the model alone


def test_model_dirty_tracking_matches_a_snapshot_at_each_sync():
    """Random writes, truncates and syncs on one file: after a cut it holds exactly the bytes
    it had at its last sync (the incremental copy from `dirty_lo` is never wrong)."""
    rng = random.Random(7)
    m = Model()
    m.root.sync()
    f = m.create("/f", 0o644)
    m.root.sync()
    reference = bytearray()
    at_last_sync = b""
    for _ in range(3000):
        r = rng.random()
        if r < 0.6:
            off = rng.randint(0, len(reference) + 50)
            buf = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
            f.write(off, buf)
            if off > len(reference):
                reference.extend(bytes(off - len(reference)))
            reference[off:off + len(buf)] = buf
        elif r < 0.75:
            n = rng.randint(0, len(reference) + 20)
            f.truncate(n)
            del reference[n:]
            reference.extend(bytes(n - len(reference)))
        elif r < 0.9:
            f.sync()
            at_last_sync = bytes(reference)
        else:
            assert m.durable_tree()["f"] == at_last_sync
        assert bytes(f.data) == bytes(reference)
    assert m.durable_tree()["f"] == at_last_sync


def test_model_names_are_durable_only_with_their_directory():
    m = Model()
    m.mkdir("/d", 0o755)
    f = m.create("/d/f", 0o644)
    f.write(0, b"data")
    f.sync()
    assert m.durable_tree() == {}, "neither / nor /d was fsynced"
    m.root.sync()
    assert m.durable_tree() == {"d": {}}, "/d's own entries were not fsynced"
    m.lookup("/d").sync()
    assert m.durable_tree() == {"d": {"f": b"data"}}
    m.rename("/d/f", "/g")
    m.root.sync()
    assert m.durable_tree() == {"d": {"f": b"data"}, "g": b"data"}, "a rename with only the target dir synced"
    m.lookup("/d").sync()
    assert m.durable_tree() == {"d": {}, "g": b"data"}


# ------------------------------------------------------------------ through a mount


def _write(path: Path, data: bytes, *, fsync: bool = False, mode: str = "wb") -> None:
    with open(path, mode, buffering=0) as f:
        f.write(data)
        if fsync:
            os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def fs(powercut_mount, tmp_path):
    """A mount over a backing dir that already holds a durable file `old` ("v1")."""
    backing, mnt = tmp_path / "backing", tmp_path / "mnt"
    backing.mkdir()
    (backing / "old").write_bytes(b"v1")
    m = powercut_mount(backing, mnt, seed=1234)
    m.backing_dir, m.mnt = backing, mnt
    return m


def _cut(fs, **kw) -> dict[str, bytes]:
    fs.cut(**kw)
    fs.unmount()
    return _files(fs.backing_dir)


def test_write_without_fsync_is_gone_after_a_cut(fs):
    mnt = fs.mnt
    assert (mnt / "old").read_bytes() == b"v1", "the backing dir's contents are mounted"
    _write(mnt / "old", b"+appended", mode="ab")
    _write(mnt / "new", b"never synced")
    _fsync_dir(mnt)  # "new" is durable as a name, its data is not
    assert (mnt / "old").read_bytes() == b"v1+appended", "a change is visible at once"
    assert _cut(fs) == {"old": b"v1", "new": b""}


def test_write_with_fsync_survives_a_cut(fs):
    mnt = fs.mnt
    _write(mnt / "old", b"+appended", mode="ab", fsync=True)
    _write(mnt / "new", b"synced", fsync=True)
    _fsync_dir(mnt)
    with open(mnt / "new", "r+b", buffering=0) as f:  # an overwrite in place, fdatasync'd
        f.seek(1)
        f.write(b"Y")
        os.fdatasync(f.fileno())
    _write(mnt / "old", b"+lost", mode="ab")
    assert _cut(fs) == {"old": b"v1+appended", "new": b"sYnced"}


def test_a_new_file_fsynced_without_its_directory_is_gone(fs):
    _write(fs.mnt / "new", b"synced data, unsynced name", fsync=True)
    assert _cut(fs) == {"old": b"v1"}


def test_a_new_directory_needs_its_parent_fsynced(fs):
    mnt = fs.mnt
    for d in ("d", "late"):
        (mnt / d).mkdir()
        _write(mnt / d / "f", b"data", fsync=True)
        _fsync_dir(mnt / d)
        if d == "d":
            _fsync_dir(mnt)
    assert _cut(fs) == {"old": b"v1", "d/f": b"data"}, "late/ was never made durable in /"


def test_rename_over_a_file_needs_the_directory_fsync(fs):
    mnt = fs.mnt
    _write(mnt / "old.tmp", b"v2", fsync=True)
    os.rename(mnt / "old.tmp", mnt / "old")
    assert (mnt / "old").read_bytes() == b"v2"
    assert _cut(fs) == {"old": b"v1"}, "the rename was never made durable: the old contents are back"


def test_rename_over_a_file_with_the_directory_fsync(powercut_mount, tmp_path):
    backing, mnt = tmp_path / "backing", tmp_path / "mnt"
    backing.mkdir()
    (backing / "old").write_bytes(b"v1")
    m = powercut_mount(backing, mnt)
    _write(mnt / "old.tmp", b"v2", fsync=True)
    os.rename(mnt / "old.tmp", mnt / "old")
    _fsync_dir(mnt)
    m.cut()
    m.unmount()
    assert _files(backing) == {"old": b"v2"}


def test_rename_of_an_unsynced_file_keeps_the_old_contents_durable_under_the_new_name_only_after_fsync(fs):
    """The classic bug: write a temp file, rename it over the real one, no fsync of the temp
    file. With the directory fsynced the new name is durable but its data is not."""
    mnt = fs.mnt
    _write(mnt / "old.tmp", b"v2")
    os.rename(mnt / "old.tmp", mnt / "old")
    _fsync_dir(mnt)
    assert _cut(fs) == {"old": b""}, "renamed without fsync of the file: an empty file after the cut"


def test_unlink_needs_the_directory_fsync(fs):
    mnt = fs.mnt
    (mnt / "old").unlink()
    assert not (mnt / "old").exists()
    assert _cut(fs) == {"old": b"v1"}


def test_unlink_with_the_directory_fsync_is_durable(powercut_mount, tmp_path):
    backing, mnt = tmp_path / "backing", tmp_path / "mnt"
    backing.mkdir()
    (backing / "old").write_bytes(b"v1")
    m = powercut_mount(backing, mnt)
    with open(mnt / "old", "rb") as still_open:
        (mnt / "old").unlink()
        _fsync_dir(mnt)
        assert still_open.read() == b"v1", "an unlinked file stays readable through an open handle"
    m.cut()
    m.unmount()
    assert _files(backing) == {}


def test_truncate_is_durable_on_fsync_only(fs):
    mnt = fs.mnt
    _write(mnt / "big", b"x" * 100, fsync=True)
    _fsync_dir(mnt)
    os.truncate(mnt / "big", 10)
    with open(mnt / "old", "r+b") as f:
        f.truncate(1)
        os.fsync(f.fileno())
    assert _cut(fs) == {"old": b"v", "big": b"x" * 100}


def test_after_a_cut_every_operation_fails(fs):
    mnt = fs.mnt
    f = open(mnt / "old", "r+b", buffering=0)
    try:
        fs.cut()
        for attempt in (lambda: f.write(b"z"), lambda: os.fsync(f.fileno()), lambda: os.listdir(mnt),
                        lambda: (mnt / "other").write_bytes(b"")):
            with pytest.raises(OSError) as e:
                attempt()
            assert e.value.errno == errno.EIO
    finally:
        f.close()
    fs.unmount()
    assert _files(fs.backing_dir) == {"old": b"v1"}


def test_a_clean_unmount_keeps_everything(fs):
    mnt = fs.mnt
    _write(mnt / "old", b"+appended", mode="ab")
    (mnt / "d").mkdir()
    _write(mnt / "d" / "f", b"unsynced")
    fs.unmount()
    assert _files(fs.backing_dir) == {"old": b"v1+appended", "d/f": b"unsynced"}


def test_a_torn_cut_keeps_a_random_prefix_of_each_unsynced_append(fs):
    mnt = fs.mnt
    appended = {}
    for i in range(20):
        _write(mnt / f"f{i}", b"synced-", fsync=True)
        appended[f"f{i}"] = bytes(random.Random(i).randrange(1, 256) for _ in range(5000))
        _write(mnt / f"f{i}", appended[f"f{i}"], mode="ab")
    _fsync_dir(mnt)
    got = _cut(fs, tear=True)
    kinds = set()
    for name, tail in appended.items():
        data = got[name]
        assert data.startswith(b"synced-"), f"{name}: the synced part must survive a tear"
        torn = data[len(b"synced-"):]
        assert len(torn) <= len(tail)
        if torn == tail[:len(torn)]:
            kinds.add("bytes" if 0 < len(torn) < len(tail) else "edge")
        else:
            assert torn == bytes(len(torn)), f"{name}: a torn tail is the written bytes or zeros, nothing else"
            kinds.add("zeros")
    assert {"bytes", "zeros"} <= kinds, f"20 files torn with seed 1234 should show both kinds: {kinds}"


def test_a_conditional_cut_happens_inside_the_write_that_meets_it(fs):
    mnt = fs.mnt
    result = {}
    armed = threading.Thread(target=lambda: result.update(fs.cut(when_unsynced=100, path_contains=".log", timeout=20)))
    with open(mnt / "a.log", "wb", buffering=0) as f:
        os.fsync(f.fileno())
        _fsync_dir(mnt)
        armed.start()
        while not fs.stats()["armed"]:
            time.sleep(0.01)
        f.write(b"a" * 60)
        _write(mnt / "other.txt", b"b" * 500)  # not a .log: does not trigger
        assert armed.is_alive()
        f.write(b"c" * 60)  # 120 unsynced bytes: the cut happens in this write
        armed.join(timeout=20)
        assert not armed.is_alive() and result.get("ok"), result
        with pytest.raises(OSError):
            f.write(b"d")
    assert result["unsynced_at_cut"]["files"]["/a.log"]["unsynced_bytes"] == 120
    fs.unmount()
    assert _files(fs.backing_dir) == {"old": b"v1", "a.log": b""}


def test_a_remount_serves_the_durable_state(powercut_mount, tmp_path):
    backing = tmp_path / "backing"
    first = powercut_mount(backing, tmp_path / "mnt")
    _write(tmp_path / "mnt" / "kept", b"k", fsync=True)
    _write(tmp_path / "mnt" / "lost", b"l")
    _fsync_dir(tmp_path / "mnt")
    first.cut()
    first.unmount()
    powercut_mount(backing, tmp_path / "mnt2")
    assert _files(tmp_path / "mnt2") == {"kept": b"k", "lost": b""}
