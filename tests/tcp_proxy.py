"""A small threaded TCP proxy for fault injection.

Forwards 127.0.0.1:<port> to a target. While `chaos` is set, every `cut_interval`
seconds it arms one fault, alternating between two kinds, and fires it on the next bytes
that pass through any connection:

- "drop-response": bytes coming back from the broker after a Produce request are thrown
  away and every connection is cut -- the broker has written a batch whose
  acknowledgement the client never sees, so the client must retry it (the case
  idempotence exists for);
- "tear-request": only the first half of bytes going to the broker is forwarded and every
  connection is cut -- the broker sees a partial request.

Arming on a timer and firing on traffic makes every cut land mid-stream, even when the
broker answers within microseconds (a blind timer would nearly always hit an idle
connection).
"""

from __future__ import annotations

import socket
import threading

MODES = ("drop-response", "tear-request")


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
        self.armed: str | None = None
        self._next_mode = 0
        self.faults = {m: 0 for m in MODES}  # faults fired, per kind
        self.cuts = 0                         # connections cut
        self.accepted = 0
        self.threads = [threading.Thread(target=self._accept_loop, daemon=True),
                        threading.Thread(target=self._chaos_loop, daemon=True)]

    def start(self) -> "ChaosProxy":
        for t in self.threads:
            t.start()
        return self

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
            state = {"produce_sent": False}
            threading.Thread(target=self._pump, args=(c, u, True, state), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, False, state), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool, state: dict):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                fault = None
                with self.lock:
                    if up and len(data) >= 6:
                        # a chunk that starts a Kafka request: 4-byte size, then int16 api_key (0 = Produce)
                        state["produce_sent"] = data[4:6] == b"\x00\x00"
                    if not self.chaos.is_set():
                        pass
                    elif up and self.armed == "tear-request" or \
                            not up and self.armed == "drop-response" and state["produce_sent"]:
                        fault, self.armed = self.armed, None
                        self.faults[fault] += 1
                if fault == "tear-request":
                    dst.sendall(data[:max(1, len(data) // 2)])
                if fault:
                    self.cut_all()
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src)
            _close(dst)

    def _chaos_loop(self):
        while not self.stopped.wait(self.cut_interval):
            if self.chaos.is_set():
                with self.lock:
                    if self.armed is None:
                        self.armed = MODES[self._next_mode % len(MODES)]
                        self._next_mode += 1

    def cut_all(self) -> int:
        with self.lock:
            conns, self.conns = self.conns, []
            self.cuts += len(conns)
        for c, u in conns:
            _close(c, rst=True)
            _close(u, rst=True)
        return len(conns)

    def stop(self):
        self.stopped.set()
        self.chaos.clear()
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
