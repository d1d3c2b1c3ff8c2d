"""A small threaded TCP proxy for fault injection: forwards 127.0.0.1:<port> to a target
and, while `chaos` is on, cuts every open connection every `cut_interval` seconds,
wherever the byte streams happen to be."""

from __future__ import annotations

import socket
import threading


class ChaosProxy:
    def __init__(self, target_port: int, *, cut_interval: float = 0.2, listen_port: int = 0):
        self.target = ("127.0.0.1", target_port)
        self.cut_interval = cut_interval
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", listen_port))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.chaos = threading.Event()
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.conns: list[tuple[socket.socket, socket.socket]] = []
        self.cuts = 0           # connections cut
        self.accepted = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.threads = [threading.Thread(target=self._accept_loop, daemon=True),
                        threading.Thread(target=self._chaos_loop, daemon=True)]

    def start(self) -> "ChaosProxy":
        for t in self.threads:
            t.start()
        return self

    def set_target_port(self, port: int) -> None:
        self.target = ("127.0.0.1", port)

    def _accept_loop(self):
        while not self.stopped.is_set():
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.target, timeout=5)
                u.settimeout(None)
            except OSError:
                _close(c)
                continue
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.conns.append((c, u))
                self.accepted += 1
            threading.Thread(target=self._pump, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                with self.lock:
                    if up:
                        self.bytes_up += len(data)
                    else:
                        self.bytes_down += len(data)
        except OSError:
            pass
        finally:
            _close(src)
            _close(dst)

    def _chaos_loop(self):
        while not self.stopped.wait(self.cut_interval):
            if self.chaos.is_set():
                self.cut_all()

    def cut_all(self) -> int:
        with self.lock:
            conns, self.conns = self.conns, []
        for c, u in conns:
            _close(c, rst=True)
            _close(u, rst=True)
        with self.lock:
            self.cuts += len(conns)
        return len(conns)

    def stop(self):
        self.stopped.set()
        _close(self.lsock)
        self.cut_all()


def _close(s: socket.socket, rst: bool = False):
    try:
        if rst:
            # SO_LINGER 0: close with RST, dropping whatever is still buffered
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass
