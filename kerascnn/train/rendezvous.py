"""The start of a multi-process run, before JAX connects the processes: every process checks in with process 0
(the chief), which then knows which processes are missing and whether all were started with the same settings.

Why not JAX alone: `jax.distributed.initialize` waits for every process inside C++; when one never comes it
aborts the process after its timeout (SIGABRT, a C++ stack, no word of which process is missing), and processes
started with different settings connect and then fail deep inside a collective (a JAX AssertionError, a gloo
"collective mismatch"). So the chief first listens on the coordinator's own address and port; every other process
connects (retrying until the chief is up) and sends one line of JSON: its process id, its process count and its
settings. The chief answers every process with one line, "ok" or the error that stops them all, as soon as it
knows: at the first process whose settings differ from its own, or when `timeout` seconds pass without all of
them. It then closes its listening socket, and JAX starts its service on the same port.

The check-in connections stay open for the whole run (`Watchdog`): a process that dies (kill -9, an error) closes
its end, and the others stop at once with one line naming it. Left alone, JAX would report it only as a gloo
"Connection reset by peer", wait in a collective for about 80 s and abort with a C++ stack. A process that
finishes says so first ("done"), so its exit is not a loss.

The listener binds the address the user gave, not every interface: `--coordinator 127.0.0.1:1234` is reachable
from this machine only.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import socket
import sys
import threading
import time

DEFAULT_TIMEOUT = 120.0  # seconds: --startup-timeout's default
# a check-in is a few hundred bytes; anything longer is not one of ours
MAX_MESSAGE = 1 << 20
POLL = 0.25  # seconds between a non-chief's attempts to reach the chief
LOST_EXIT = 1  # the exit status of a process whose peer was lost
# seconds a process that raised waits to see whether a peer's end caused it (gloo: "Connection closed by peer")
LOST_GRACE = 3.0


class RendezvousError(ValueError):
    """The processes cannot start together; the message names the missing process, the setting that differs, or the
    address that cannot be used, and what to do."""


def split_address(address: str) -> tuple[str, int]:
    """("host", port) of "host:port" or "[v6 address]:port"."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _ids(ids) -> str:
    ids = sorted(ids)
    return ("process " if len(ids) == 1 else "processes ") + ", ".join(str(i) for i in ids)


def differences(chief: dict, other: dict, process_id: int) -> str | None:
    """ "--seed 1 (process 0: 0); ..." for every setting in which process `process_id` differs from the chief, or
    None when they agree. Settings are {label: value}, a label being the flag a user would change."""
    labels = sorted(set(chief) | set(other))
    differ = [label for label in labels if chief.get(label) != other.get(label)]
    if not differ:
        return None
    shown = "; ".join(
        f"{label} {json.dumps(other.get(label))} (process 0: {json.dumps(chief.get(label))})" for label in differ
    )
    return (
        f"Process {process_id} was started with other settings than process 0: {shown}. Start every process with "
        "the same flags; only --process-id differs."
    )


def loopback_name(host: str) -> str | None:
    """The loopback address a host *name* resolves to here (Debian's /etc/hosts maps a machine's own name to
    127.0.1.1), or None: an IP address, "localhost", a name of a reachable address, or one that does not resolve."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if host == "localhost":
        return None
    try:
        address = socket.getaddrinfo(host, None)[0][4][0]
    except OSError:
        return None
    return address if ipaddress.ip_address(address).is_loopback else None


def _listen(bind: str) -> socket.socket:
    host, port = split_address(bind)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    loopback = loopback_name(host)
    if loopback:
        print(
            f"Note: --coordinator {host} is {loopback} on this machine, which no other machine reaches; for processes "
            f"on other machines give process 0's network address (or set JAX_COORDINATOR_BIND_ADDRESS=[::]:{port}).",
            file=sys.stderr,
        )
    try:
        return socket.create_server((host, port), family=family)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise RendezvousError(
                f"--coordinator: port {port} on {host} is already in use (another run, or one still shutting down). "
                f"Choose another port, or stop what listens there (ss -ltnp 'sport = :{port}' shows it)."
            ) from None
        raise RendezvousError(
            f"--coordinator: process 0 cannot listen on {host}:{port} ({error.strerror}). Give an address of the "
            "machine that runs process 0, reachable from every process."
        ) from None


def _read_line(connection: socket.socket, deadline: float) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        connection.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = connection.recv(65536)
        if not chunk or len(data) + len(chunk) > MAX_MESSAGE:
            raise OSError("closed or too long")
        data += chunk
    return data


def _send(connection: socket.socket, message: dict) -> None:
    connection.sendall((json.dumps(message) + "\n").encode())


def _refuse(connections: dict, error: str) -> None:
    """Sends every connected process the error, waits (briefly) for it to close first, and closes."""
    for connection in connections.values():
        try:
            _send(connection, {"error": error})
            connection.settimeout(5)
            connection.recv(1)  # the other side closes first: the TIME_WAIT stays off the coordinator's port
        except OSError:
            pass
        finally:
            connection.close()


def _waiting(server: socket.socket) -> dict:
    """The connections made to `server` but not accepted yet, each with its check-in read: closing the listening
    socket would reset them unanswered, and closing one with its check-in unread would reset it too."""
    waiting = {}
    server.settimeout(0.05)
    while True:
        try:
            connection, _ = server.accept()
        except OSError:  # TimeoutError: none left
            return waiting
        with contextlib.suppress(OSError):
            _read_line(connection, time.monotonic() + 2)
        waiting[f"waiting {len(waiting)}"] = connection


def serve(bind: str, num_processes: int, settings: dict, timeout: float) -> dict[int, socket.socket]:
    """The chief's side: waits up to `timeout` seconds for processes 1 .. num_processes - 1 to check in with
    settings equal to `settings`, then answers all of them.

    Returns:
        {process id: its open check-in connection}, for `Watchdog`.

    Raises:
        RendezvousError: the port is in use or not an address of this machine; a process did not check in in
            time (named); a process checked in with other settings (the labels that differ are named) or with
            an id already taken (0 is the chief's); the process refused hears why, as do the others.
    """
    settings = json.loads(json.dumps(settings))  # as the others' arrive: tuples are lists
    server = _listen(bind)
    connections: dict[int, socket.socket] = {}
    deadline = time.monotonic() + timeout
    error = None
    try:
        while error is None and len(connections) < num_processes - 1:
            server.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                connection, _ = server.accept()
            except TimeoutError:
                missing = set(range(1, num_processes)) - set(connections)
                error = (
                    f"{_ids(missing).capitalize()} of {num_processes} did not start within {timeout:g} s "
                    f"(--startup-timeout; here: {_ids({0, *connections})}). Start each with the same flags and its "
                    "own --process-id, or give a longer --startup-timeout."
                )
                break
            try:
                message = json.loads(_read_line(connection, time.monotonic() + 10))
                process_id, count, theirs = message["process_id"], message["num_processes"], message["settings"]
                if not (isinstance(process_id, int) and isinstance(count, int) and isinstance(theirs, dict)):
                    raise ValueError
            except (OSError, ValueError, KeyError, TypeError):  # not a kerascnn process: ignore it
                connection.close()
                continue
            if process_id in connections or process_id <= 0:
                taken = "is already taken" + (" (by the chief, listening at --coordinator)" if process_id == 0 else "")
                error = (
                    f"Two processes were started with --process-id {process_id}: process id {process_id} {taken}. "
                    f"Give each process its own --process-id, 0 to {num_processes - 1}."
                )
                _refuse({process_id: connection}, f"Process 0 stopped the run: {error}")  # it hears why, too
                break
            connections[process_id] = connection
            ours = {"--num-processes": num_processes, **settings}
            error = differences(ours, {"--num-processes": count, **theirs}, process_id)
    except BaseException:
        error = error or "it was interrupted while the others checked in"
        raise
    finally:
        if error:
            connections.update(_waiting(server))
        server.close()
        if error:
            _refuse(connections, f"Process 0 stopped the run: {error}")
    if error:
        raise RendezvousError(error)
    for connection in connections.values():
        try:
            _send(connection, {"ok": True})
        except OSError:  # that process is gone already: its Watchdog thread says so
            pass
    return connections


def check_in(address: str, process_id: int, num_processes: int, settings: dict, timeout: float) -> socket.socket:
    """A non-chief's side: reaches the chief at `address` (retrying for up to `timeout` seconds while it starts),
    sends this process's id, count and `settings`, and waits for the chief's verdict.

    Returns:
        The open check-in connection to the chief, for `Watchdog`.

    Raises:
        RendezvousError: the chief did not answer in time, closed without a verdict, or stopped the run (its
            message is passed on).
    """
    host, port = split_address(address)
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = socket.create_connection((host, port), timeout=max(min(deadline - time.monotonic(), 5), 0.01))
            break
        except OSError:
            if time.monotonic() >= deadline:
                raise RendezvousError(
                    f"Process 0 did not answer at {address} within {timeout:g} s (--startup-timeout). Start it there "
                    "with the same flags and --process-id 0 (it stops at once on a bad flag: see its output), "
                    "check --coordinator, or give a longer --startup-timeout."
                ) from None
            time.sleep(POLL)
    try:
        _send(connection, {"process_id": process_id, "num_processes": num_processes, "settings": settings})
        # the chief answers within its own timeout of its start, which was before this connection
        answer = json.loads(_read_line(connection, time.monotonic() + timeout + 10))
    except (OSError, ValueError) as error:
        connection.close()
        raise RendezvousError(
            f"Process 0 at {address} closed the connection without an answer ({error}): see its output."
        ) from None
    if not answer.get("ok"):
        connection.close()
        raise RendezvousError(str(answer.get("error")))
    return connection


class Watchdog:
    """Ends this process, with one line, when another process of the run ends before finishing.

    It watches the open check-in connections (the chief's to every process, each other process's to the chief)
    in daemon threads. A peer's end of the connection closes when it exits; unless it first sent "done"
    (`close(finished=True)`), it was lost: killed, or stopped by an error of its own. The chief tells the
    others which process was lost, so every process names it. The checkpoints on disk are written through a
    temporary file and a rename, so ending the process at any moment (os._exit, like a kill) leaves the last
    one complete.

    Args:
        peers: {process id: check-in connection} (`serve`'s or `{0: check_in(...)}`).
        process_id: this process's id.
        num_processes: how many processes take part.
        on_lost: called with the message when a peer is lost; default: print it to stderr and os._exit(1).

    Example:
        >>> watchdog = Watchdog(serve("127.0.0.1:1234", 2, {}, 60), 0, 2)
        >>> ...  # the run
        >>> watchdog.close(finished=True)
    """

    def __init__(self, peers: dict[int, socket.socket], process_id: int, num_processes: int, on_lost=None):
        self.peers, self.process_id, self.num_processes = peers, process_id, num_processes
        self.on_lost = on_lost or _exit_lost
        self._lock = threading.Lock()
        self._ended = False
        self._threads = [
            threading.Thread(target=self._watch, args=(peer_id, connection), daemon=True)
            for peer_id, connection in peers.items()
        ]
        for thread in self._threads:
            thread.start()

    def _watch(self, peer_id: int, connection: socket.socket) -> None:
        lost, data = peer_id, b""
        try:
            connection.settimeout(None)
            while chunk := connection.recv(4096):
                data += chunk
                *lines, data = data.split(b"\n")
                for line in lines:
                    message = json.loads(line)
                    if message.get("done"):
                        return
                    if "lost" in message:  # from the chief: another process was lost
                        lost = int(message["lost"])
                        raise EOFError
        except (OSError, ValueError, EOFError):
            pass
        self._lost(lost)

    def _lost(self, peer_id: int) -> None:
        with self._lock:
            if self._ended:  # this process is closing the watch itself
                return
            self._ended = True
        for other, connection in self.peers.items():
            if other != peer_id:
                try:
                    _send(connection, {"lost": peer_id})
                except OSError:
                    pass
        self.on_lost(
            f"Process {peer_id} of {self.num_processes} ended before the run finished (killed, or stopped by an "
            f"error: see its output), so process {self.process_id} stops too. The checkpoints are intact: start "
            "every process again with the same command and --resume to continue from the last one."
        )

    def close(self, finished: bool, grace: float = LOST_GRACE) -> None:
        """Stops watching; `finished`: this process completed the run, and says so to its peers first.

        Unfinished (this process raised), it first gives the watching threads `grace` seconds to see a peer's end:
        a lost peer often shows first as this process's own error (gloo's "Connection closed by peer"), and the
        lost process is then named instead, and this one does not hang in JAX's shutdown.
        """
        deadline = time.monotonic() + (0 if finished else grace)
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0))
        with self._lock:
            if self._ended:
                return
            self._ended = True
        for connection in self.peers.values():
            try:
                if finished:
                    _send(connection, {"done": True})
                connection.shutdown(socket.SHUT_RDWR)  # wakes the watching thread's recv
            except OSError:
                pass
            connection.close()


def _exit_lost(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(LOST_EXIT)  # JAX's threads wait in a collective that cannot end: no cleanup would return
