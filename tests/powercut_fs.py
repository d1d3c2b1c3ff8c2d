"""A FUSE file system that models a disk's write cache, for power-loss tests.

    python tests/powercut_fs.py BACKING MOUNTPOINT --control SOCKET [--seed N]

mounts MOUNTPOINT with BACKING's contents and keeps everything in memory from then on. Every
change is visible through the mount at once (as through the page cache), but only what was
made durable survives a power cut:

- file data and size: durable when fsync or fdatasync returns on that file (both persist the
  data and the size; times and modes are not modelled as durable state);
- directory entries (a create, mkdir, rename, unlink, rmdir): durable when fsync returns on
  that directory. This is the strict POSIX reading (fsync(2): "Calling fsync() does not
  necessarily ensure that the entry in the directory containing the file has also reached
  disk. For that an explicit fsync() on a file descriptor for the directory is also needed").
  ext4 and XFS usually persist a new file's name with the file's first fsync (one journal),
  but promise nothing, so a program that relies on it is not crash-safe by contract. So: a
  file created and fsynced in a directory never fsynced is gone after a cut, a file renamed
  over another without a directory fsync comes back with its old contents, and an unlinked
  file comes back. A rename between two directories is durable in each directory on that
  directory's fsync (with only the target's fsynced, the file is in both afterwards).

The control socket (a Unix stream socket, one command line in, one JSON line out) drives it:

    ping                     -> {"ok": true}
    stats                    -> what is unsynced: {"files": {path: {"size", "synced"}}, "dirs": [...]}
    sync                     -> every file and directory made durable (sync(2))
    cut [tear] [when-unsynced=N path-contains=S timeout=T]
                             -> power cut: from this moment every operation on the mount
                                fails with EIO (reads too), and BACKING is rewritten to hold
                                exactly the durable state. `tear`: a file whose unsynced
                                changes are all appends keeps a prefix of them cut at a
                                random byte, half the time as the real bytes and half as
                                zeros (the size reached the disk, the data did not) -- what a
                                torn write leaves. `when-unsynced=N`: the cut happens inside
                                the first write after which a file whose path contains S
                                holds at least N unsynced bytes (waits at most T seconds,
                                then fails without cutting): N=1 cuts inside an append that
                                is not fsynced yet. Replies with what was lost.
    unmount                  -> unmounts (after a cut: BACKING keeps the cut state; without
                                one: a clean unmount, everything is synced first) and exits.

It runs on libfuse 3 through mfusepy (ctypes), single-threaded with one lock, so a cut
falls between two operations or inside the write that triggers it; the mount has no kernel
writeback cache, so every write(2) reaches it as it happens. Running it needs root (mount(2))
and /dev/fuse. The process also unmounts cleanly on SIGTERM/SIGINT. The model itself (what
is durable, what a cut leaves) is tests/powercut_model.py. `PowercutMount` below starts,
drives and cleans up one instance; `fuse_unavailable()` tells why FUSE cannot be used here,
if so. Only regular files and directories exist (no links, no xattrs); flock is the
kernel's own.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from powercut_model import Model, tree_summary, write_tree

# ------------------------------------------------------------------ the FUSE layer


def serve(backing: Path, mountpoint: Path, control: Path, seed: int) -> int:
    # libfuse 3 (Debian's libfuse3-3, which tests/run installs), even where libfuse 2 is
    # installed too: mfusepy would take that first, and only the libfuse 3 path is tested.
    os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
    import mfusepy  # imported here: the model and the client side work without it
    from mfusepy import FUSE, FuseOSError, Operations

    model = Model()
    model.load(backing)
    lock = threading.Lock()
    state = {"cut": None, "armed": None}
    cut_done = threading.Condition(lock)
    rng = random.Random(seed)

    class Handle:
        __slots__ = ("node", "path")

        def __init__(self, node, path):
            self.node, self.path = node, path

    handles: dict[int, Handle] = {}
    next_fh = [1]

    def new_handle(node, path) -> int:
        fh = next_fh[0]
        next_fh[0] += 1
        handles[fh] = Handle(node, path)
        return fh

    def do_cut(tear: bool) -> dict:
        """Under the lock: freeze, compute the durable state, write it to the backing dir."""
        before = model.unsynced()
        tree = model.durable_tree(rng if tear else None)
        write_tree(backing, tree)
        state["cut"] = {"ok": True, "tear": tear, "seed": seed, "unsynced_at_cut": before,
                        "durable": tree_summary(tree)}
        cut_done.notify_all()
        return state["cut"]

    def op(fn):
        """Runs a FUSE operation under the lock; after a cut, everything fails with EIO."""
        def wrapped(self, *args):
            with lock:
                if state["cut"] is not None:
                    raise FuseOSError(errno.EIO)
                return fn(self, *args)  # an OSError's errno goes back to the caller (mfusepy)
        wrapped.__name__ = fn.__name__
        return wrapped

    class Ops(Operations):
        use_ns = True
        flag_nopath = True
        flag_nullpath_ok = True

        def _node(self, path, fh):
            if fh:
                h = handles.get(fh)
                if h is not None:
                    return h.node
            if path is None:
                raise FuseOSError(errno.EBADF)
            return model.lookup(path)

        @op
        def getattr(self, path, fh=None):
            n = self._node(path, fh)
            size = 4096 if n.is_dir else len(n.data)
            return {"st_mode": n.mode, "st_ino": n.ino, "st_nlink": 2 if n.is_dir else 1, "st_size": size,
                    "st_blocks": (size + 511) // 512, "st_blksize": 4096, "st_uid": 0, "st_gid": 0,
                    "st_atime": n.atime, "st_mtime": n.mtime, "st_ctime": n.ctime}

        @op
        def access(self, path, amode):
            model.lookup(path)
            return 0

        @op
        def opendir(self, path):
            n = model.lookup(path)
            if not n.is_dir:
                raise FuseOSError(errno.ENOTDIR)
            return new_handle(n, path)

        @op
        def releasedir(self, path, fh):
            handles.pop(fh, None)
            return 0

        @op
        def readdir(self, path, fh):
            n = self._node(path, fh)
            # With use_ino the inode numbers must be given (an entry with inode 0 is skipped).
            own = {"st_mode": n.mode, "st_ino": n.ino}
            return [(".", own, 0), ("..", own, 0)] + [
                (name, {"st_mode": c.mode, "st_ino": c.ino}, 0) for name, c in n.entries.items()]

        @op
        def fsyncdir(self, path, datasync, fh):
            self._node(path, fh).sync()
            return 0

        @op
        def mkdir(self, path, mode):
            model.mkdir(path, mode)
            return 0

        @op
        def rmdir(self, path):
            model.rmdir(path)
            return 0

        @op
        def create(self, path, mode, flags=0):
            n = model.create(path, mode)
            if flags & os.O_TRUNC:
                n.truncate(0)
            return new_handle(n, path)

        @op
        def open(self, path, flags):
            n = model.lookup(path)
            if n.is_dir:
                raise FuseOSError(errno.EISDIR)
            if flags & os.O_TRUNC:
                n.truncate(0)
            return new_handle(n, path)

        @op
        def read(self, path, size, offset, fh):
            n = self._node(path, fh)
            return bytes(n.data[offset:offset + size])

        @op
        def write(self, path, data, offset, fh):
            h = handles.get(fh)
            n = h.node if h else model.lookup(path)
            written = n.write(offset, data)
            armed = state["armed"]
            if armed and h and armed["path"] in h.path and n.unsynced_bytes() >= armed["bytes"]:
                state["armed"] = None
                do_cut(armed["tear"])  # this write made it into the cache; nothing after it will
            return written

        @op
        def truncate(self, path, length, fh=None):
            self._node(path, fh).truncate(length)
            return 0

        @op
        def fsync(self, path, datasync, fh):
            self._node(path, fh).sync()
            return 0

        def flush(self, path, fh):
            return 0

        def release(self, path, fh):
            with lock:
                handles.pop(fh, None)
            return 0

        @op
        def unlink(self, path):
            model.unlink(path)
            return 0

        @op
        def rename(self, old, new):
            model.rename(old, new)
            return 0

        @op
        def chmod(self, path, mode):
            n = model.lookup(path)
            n.mode = (n.mode & ~0o7777) | (mode & 0o7777)
            return 0

        @op
        def chown(self, path, uid, gid):
            return 0

        @op
        def utimens(self, path, times=None):
            n = model.lookup(path)
            now = time.time_ns()
            n.atime, n.mtime = times if times else (now, now)
            return 0

        def statfs(self, path):
            st = os.statvfs(backing)
            return {k: getattr(st, k) for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                                                 "f_files", "f_ffree", "f_favail", "f_namemax")}

        def symlink(self, target, source):
            raise FuseOSError(errno.EPERM)

        def link(self, target, source):
            raise FuseOSError(errno.EPERM)

        def mknod(self, path, mode, dev):
            raise FuseOSError(errno.EPERM)

    class PowercutFUSE(FUSE):
        # mfusepy drops the file handle of a libfuse 3 truncate (ftruncate), and with
        # flag_nopath there is no path either: hand the handle on.
        def truncate_fuse_3(self, path, length, fip):
            fh = fip.contents.fh if fip else None
            return self.operations.truncate(None if path is None else path.decode(), length, fh)

    # ---- the control socket
    def unmount() -> None:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False, capture_output=True)

    def handle_command(line: str) -> dict:
        words = line.split()
        if not words:
            return {"ok": False, "error": "empty command"}
        cmd, opts = words[0], dict(w.split("=", 1) if "=" in w else (w, "1") for w in words[1:])
        if cmd == "ping":
            return {"ok": True, "pid": os.getpid()}
        if cmd == "stats":
            with lock:
                return {"ok": True, "cut": state["cut"] is not None, "armed": state["armed"] is not None,
                        **model.unsynced()}
        if cmd == "sync":
            with lock:
                if state["cut"] is not None:
                    return {"ok": False, "error": "after a cut"}
                model.sync_all()
            return {"ok": True}
        if cmd == "cut":
            tear = "tear" in opts
            with lock:
                if state["cut"] is not None:
                    return state["cut"]
                if "when-unsynced" not in opts:
                    return do_cut(tear)
                state["armed"] = {"bytes": int(opts["when-unsynced"]), "path": opts.get("path-contains", ""), "tear": tear}
                deadline = time.monotonic() + float(opts.get("timeout", "30"))
                while state["cut"] is None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        state["armed"] = None
                        return {"ok": False, "error": f"no file with {opts.get('path-contains', '')!r} in its path reached "
                                                      f"{opts['when-unsynced']} unsynced bytes in time",
                                **model.unsynced()}
                    cut_done.wait(left)
                return state["cut"]
        if cmd == "unmount":
            with lock:
                if state["cut"] is None:
                    model.sync_all()
            return {"ok": True}  # the control loop unmounts once this reply is sent
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    if control.exists():
        control.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(control))
    server.listen(8)

    def serve_connection(conn: socket.socket) -> None:
        with conn, conn.makefile("rw") as f:
            for line in f:
                try:
                    reply = handle_command(line)
                except Exception as e:  # report, keep serving
                    reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                f.write(json.dumps(reply) + "\n")
                f.flush()
                if line.split()[:1] == ["unmount"]:
                    unmount()  # fuse_main returns; the process writes the state and exits
                    return

    def control_loop() -> None:
        # a connection each: a conditional cut waits while `stats` is still answered
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve_connection, args=(conn,), daemon=True).start()

    threading.Thread(target=control_loop, daemon=True, name="control").start()
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
    mfusepy.log.setLevel(os.environ.get("POWERCUT_LOG", "ERROR"))  # DEBUG: every failing operation
    try:
        PowercutFUSE(Ops(), str(mountpoint), foreground=True, nothreads=True, hard_remove=True, use_ino=True,
             fsname="powercut", subtype="powercut")
    finally:
        server.close()
        with lock:
            if state["cut"] is None:
                # Unmounted without a cut (the unmount command, SIGTERM, an umount from
                # outside): a clean shutdown, so the page cache reaches the disk.
                model.sync_all()
                write_tree(backing, model.durable_tree())
    return 0


# ------------------------------------------------------------------ the client side


def fuse_unavailable() -> str | None:
    """Why this machine cannot run a FUSE file system (None if it can): only reasons that are
    the machine's (no /dev/fuse, not permitted), never a missing package, which tests/run
    installs, and which `PowercutMount` then reports as an error."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist (no FUSE in this kernel or container)"
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as e:
        return f"cannot open /dev/fuse: {e.strerror}"
    if os.geteuid() != 0:
        return "mounting the power-cut file system needs root (the tests mount with mount(2), not fusermount)"
    return None


class MountFailed(Exception):
    pass


class PowercutMount:
    """A running powercut_fs: `backing` holds the durable state, `mountpoint` is what the
    program under test uses. Use as a context manager; the exit always unmounts."""

    def __init__(self, backing: Path, mountpoint: Path, *, seed: int | None = None, log_path: Path | None = None):
        self.backing, self.mountpoint = Path(backing), Path(mountpoint)
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.control = self.mountpoint.parent / f".{self.mountpoint.name}.powercut.sock"
        self.seed = random.randrange(2**32) if seed is None else seed
        self.log_path = Path(log_path) if log_path else self.mountpoint.parent / f"{self.mountpoint.name}.powercut.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> "PowercutMount":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), str(self.backing), str(self.mountpoint),
             "--control", str(self.control), "--seed", str(self.seed)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not os.path.ismount(self.mountpoint):
            if self.proc.poll() is not None:
                raise MountFailed(f"powercut_fs exited with {self.proc.returncode} before mounting "
                                  f"{self.mountpoint}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise MountFailed(f"powercut_fs did not mount {self.mountpoint} within {timeout}s:\n{self.log_tail()}")
            time.sleep(0.02)
        self.command("ping")
        return self

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "<no log>"

    def command(self, line: str, timeout: float = 60.0) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.control))
            s.sendall(line.encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    raise MountFailed(f"powercut_fs closed the control socket on {line!r}:\n{self.log_tail()}")
                buf += chunk
        return json.loads(buf)

    def stats(self) -> dict:
        return self.command("stats")

    def sync(self) -> None:
        assert self.command("sync")["ok"]

    def cut(self, *, tear: bool = False, when_unsynced: int | None = None, path_contains: str = "",
            timeout: float = 30.0) -> dict:
        """Power cut: the mount fails every operation from now on and `backing` holds what
        was durable. Returns the report (see the module doc); raises if a conditional cut
        did not happen in time."""
        line = "cut" + (" tear" if tear else "")
        if when_unsynced is not None:
            line += f" when-unsynced={when_unsynced} path-contains={path_contains} timeout={timeout}"
        reply = self.command(line, timeout=timeout + 30)
        if not reply.get("ok"):
            raise MountFailed(f"cut failed: {reply}")
        return reply

    def unmount(self, timeout: float = 15.0) -> None:
        """Unmounts and waits for the process to exit (a clean unmount unless cut before)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.command("unmount")
            except (OSError, MountFailed):
                subprocess.run(["umount", "-l", str(self.mountpoint)], check=False, capture_output=True)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.stop()
                raise MountFailed(f"powercut_fs did not exit within {timeout}s of unmount:\n{self.log_tail()}")
        rc = self.proc.returncode
        self.proc = None
        if rc != 0:
            raise MountFailed(f"powercut_fs exited with {rc}:\n{self.log_tail()}")

    def stop(self) -> None:
        """Teardown: unmount (lazily) and kill the process, whatever state it is in."""
        subprocess.run(["umount", "-l", str(self.mountpoint)], check=False, capture_output=True)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
            self.proc = None

    def __enter__(self) -> "PowercutMount":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("backing", type=Path)
    ap.add_argument("mountpoint", type=Path)
    ap.add_argument("--control", type=Path, required=True, help="Unix socket for commands")
    ap.add_argument("--seed", type=int, default=0, help="seed of the tear positions")
    a = ap.parse_args()
    print(f"powercut_fs: {a.backing} on {a.mountpoint}, control {a.control}, seed {a.seed}", flush=True)
    return serve(a.backing.resolve(), a.mountpoint.resolve(), a.control, a.seed)


if __name__ == "__main__":
    sys.exit(main())
