"""The fork server: whatsmeow children forked from one process that imported neonize once.

A child started as `python -m ...` imports neonize's ~57 MB of Python modules for itself
(measured: PSS 49 MB per idle child). The fork server imports them once, without the Go
library (`whatsmeow_preload`), freezes its heap out of the garbage collector's reach
(`gc.freeze()`: collections would otherwise touch, and so copy, every shared page), and
forks each child from there; the child then loads the Go library for itself. Fork before
the Go runtime starts, never after: it starts threads as it loads.

The server talks to the fork server over a Unix socketpair (one message per request,
file descriptors passed alongside): `Spawn` hands it the child's frame socket and log
file; it answers `Spawned` with the pid, and `Exited` with the exit code once it has
reaped the child (so no child is ever left a zombie). When the server goes away (its
end of the socket closes) the fork server kills its children and exits; each child
also dies with the fork server (PR_SET_PDEATHSIG) and stops when its frame socket
closes, so no child outlives the server.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import traceback
from concurrent.futures import Future
from pathlib import Path

import msgspec

from actors.engines import whatsmeow_frames as f
from actors.engines.frames import Channel

log = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024
PR_SET_PDEATHSIG = 1


class Spawn(f.Frame, tag="spawn", frozen=True):
    id: int
    session_dir: str
    uploads_dir: str
    max_size: int


class Kill(f.Frame, tag="kill", frozen=True):
    pid: int
    signal: int


class Started(f.Frame, tag="started", frozen=True):
    pid: int


class Spawned(f.Frame, tag="spawned", frozen=True):
    id: int
    pid: int


class Exited(f.Frame, tag="exited", frozen=True):
    pid: int
    code: int


_encoder = msgspec.msgpack.Encoder()
_to_server = msgspec.msgpack.Decoder(Spawn | Kill)
_to_client = msgspec.msgpack.Decoder(Started | Spawned | Exited)


# -- the fork server process -----------------------------------------------------------


def serve(control: socket.socket) -> None:
    from actors.engines import whatsmeow_preload

    whatsmeow_preload.prepare()
    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when we stop
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: set[int] = set()
    control.send(_encoder.encode(Started(pid=os.getpid())))
    while True:
        _reap(control, children)
        readable, _, _ = select.select([control.fileno(), wake_r], [], [])
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
        if control.fileno() not in readable:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, 2)
        except OSError:
            data, fds = b"", []
        if not data:
            break  # the server is gone
        request = _to_server.decode(data)
        if isinstance(request, Kill):
            if request.pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(request.pid, request.signal)
            continue
        me = os.getpid()
        pid = os.fork()
        if pid == 0:
            _child(request, fds, control, (wake_r, wake_w), me)
        children.add(pid)
        for fd in fds:
            os.close(fd)
        control.send(_encoder.encode(Spawned(id=request.id, pid=pid)))
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _reap(control: socket.socket, children: set[int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid in children:  # not neonize's `uname` shell
            children.discard(pid)
            with contextlib.suppress(OSError):
                control.send(
                    _encoder.encode(Exited(pid=pid, code=os.waitstatus_to_exitcode(status)))
                )


def _child(
    request: Spawn, fds: list[int], control: socket.socket, wake: tuple[int, int], parent: int
) -> None:
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        control.close()
        for fd in wake:
            os.close(fd)
        channel_fd, log_fd = fds
        os.dup2(log_fd, 2)
        os.dup2(2, 1)  # whatever the library prints goes to the log
        os.close(log_fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        _die_with_parent(parent)
        from actors.engines.whatsmeow_child import run

        sock = socket.socket(fileno=channel_fd)
        channel: Channel[f.Command] = Channel(sock.makefile("rb"), sock.makefile("wb"), f.Command)
        code = run(channel, Path(request.session_dir), Path(request.uploads_dir), request.max_size)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)  # the fork server died while we started


def main(argv: list[str]) -> int:
    serve(socket.socket(fileno=int(argv[0])))
    return 0


# -- the server's side -------------------------------------------------------------------


class ChildProcess:
    """A forked child: its frame channel, and its exit as the fork server reported it."""

    def __init__(self, pid: int, sock: socket.socket, server: ForkServer) -> None:
        self.pid = pid
        self.channel: Channel[f.Report] = Channel(
            sock.makefile("rb"), sock.makefile("wb"), f.Report
        )
        self._sock = sock
        self._server = server
        self._exited = threading.Event()
        self.returncode: int | None = None

    def exited(self, code: int | None) -> None:
        self.returncode = code
        self._exited.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._exited.wait(timeout)

    def poll(self) -> int | None:
        return self.returncode if self._exited.is_set() else None

    def kill(self) -> None:
        if not self._exited.is_set():
            self._server.kill(self.pid)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


class ForkServer:
    """The server's handle on its fork server: started on first use, restarted if it died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._ids = 0
        self._waiting: dict[int, Future[int]] = {}
        self._children: dict[int, ChildProcess] = {}
        self._early_exits: dict[int, int] = {}

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def spawn(
        self, session_dir: Path, uploads_dir: Path, max_size: int, log_path: Path
    ) -> ChildProcess:
        """Fork a child for one instance; its stderr goes to `log_path`."""
        ours, theirs = socket.socketpair()
        try:
            with self._lock:
                control = self._ensure()
                self._ids += 1
                request = Spawn(
                    id=self._ids,
                    session_dir=str(session_dir),
                    uploads_dir=str(uploads_dir),
                    max_size=max_size,
                )
                answer: Future[int] = Future()
                self._waiting[request.id] = answer
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("ab") as log_file, self._send_lock:
                socket.send_fds(
                    control, [_encoder.encode(request)], [theirs.fileno(), log_file.fileno()]
                )
            pid = answer.result(timeout=30)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        child = ChildProcess(pid, ours, self)
        with self._lock:
            self._children[pid] = child
            if pid in self._early_exits:
                child.exited(self._early_exits.pop(pid))
        return child

    def kill(self, pid: int, sig: int = signal.SIGKILL) -> None:
        control = self._control
        if control is None:
            return
        with contextlib.suppress(OSError), self._send_lock:
            control.send(_encoder.encode(Kill(pid=pid, signal=sig)))

    def close(self) -> None:
        """Stop the fork server (its children are killed if any are left)."""
        with self._lock:
            control, process = self._control, self._process
            self._control = self._process = None
        if control is not None:
            with contextlib.suppress(OSError):
                control.shutdown(socket.SHUT_RDWR)
            control.close()
        if process is not None:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _ensure(self) -> socket.socket:
        if self._control is not None and self._process is not None and self._process.poll() is None:
            return self._control
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        process = subprocess.Popen(
            [sys.executable, "-m", "actors.engines.whatsmeow_forkserver", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        started = _to_client.decode(ours.recv(MAX_MESSAGE) or b"\xc0")
        if not isinstance(started, Started):
            process.kill()
            process.wait()
            raise RuntimeError("the whatsmeow fork server did not start")
        log.info("whatsmeow fork server started (pid %s)", process.pid)
        self._control, self._process = ours, process
        threading.Thread(
            target=self._read, args=(ours, process), name="whatsmeow-forkserver", daemon=True
        ).start()
        return ours

    def _read(self, control: socket.socket, process: subprocess.Popen[bytes]) -> None:
        while True:
            try:
                data = control.recv(MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                break
            message = _to_client.decode(data)
            with self._lock:
                if isinstance(message, Spawned):
                    future = self._waiting.pop(message.id, None)
                    if future is not None:
                        future.set_result(message.pid)
                elif isinstance(message, Exited):
                    child = self._children.pop(message.pid, None)
                    if child is not None:
                        child.exited(message.code)
                    else:
                        self._early_exits[message.pid] = message.code
        process.wait()  # reaped: the fork server never lingers as a zombie
        with self._lock:
            if self._process is process:
                log.warning("whatsmeow fork server %s exited (%s)", process.pid, process.returncode)
                self._control = self._process = None
            for future in self._waiting.values():
                future.set_exception(RuntimeError("the whatsmeow fork server exited"))
            self._waiting.clear()
            children, self._children = self._children, {}
        for child in children.values():
            child.exited(None)  # they die with it (PR_SET_PDEATHSIG)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main(sys.argv[1:]))
