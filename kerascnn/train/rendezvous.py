"""The start of a multi-process run, before JAX connects the processes: every process checks in with process 0
(the chief), which then knows which processes are missing and whether all were started with the same settings.

Why not JAX alone: `jax.distributed.initialize` waits for every process inside C++; when one never comes it
aborts the process after its timeout (SIGABRT, a C++ stack, no word of which process is missing), and processes
started with different settings connect and then fail deep inside a collective (a JAX AssertionError, a gloo
"collective mismatch"). So the chief first listens on the coordinator's own address and port; every other process
connects (retrying until the chief is up) and sends one line of JSON: its process id, its process count and its
settings. The chief answers every process with one line, "ok" or the error that stops them all, as soon as it
knows: at the first process whose settings differ from its own, or when `timeout` seconds pass without all of
them. It then closes the socket, and JAX starts its service on the same port.

The listener binds the address the user gave, not every interface: `--coordinator 127.0.0.1:1234` is reachable
from this machine only.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
import sys
import time

DEFAULT_TIMEOUT = 120.0  # seconds: --startup-timeout's default
# a check-in is a few hundred bytes; anything longer is not one of ours
MAX_MESSAGE = 1 << 20
POLL = 0.25  # seconds between a non-chief's attempts to reach the chief


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


def _answer(connections: dict, error: str | None) -> None:
    """Sends every connected process the verdict, waits (briefly) for it to close first, and closes."""
    line = (json.dumps({"error": error} if error else {"ok": True}) + "\n").encode()
    for connection in connections.values():
        try:
            connection.sendall(line)
            connection.settimeout(5)
            connection.recv(1)  # the other side closes first: the TIME_WAIT stays off the coordinator's port
        except OSError:
            pass
        finally:
            connection.close()


def serve(bind: str, num_processes: int, settings: dict, timeout: float) -> None:
    """The chief's side: waits up to `timeout` seconds for processes 1 .. num_processes - 1 to check in with
    settings equal to `settings`, then answers all of them.

    Raises:
        RendezvousError: the port is in use or not an address of this machine; a process did not check in in
            time (named); a process checked in with other settings (the labels that differ are named) or twice.
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
            if process_id in connections or not 0 < process_id:
                error = f"Two processes were started with --process-id {process_id}: give each its own."
                connection.close()
                break
            connections[process_id] = connection
            ours = {"--num-processes": num_processes, **settings}
            error = differences(ours, {"--num-processes": count, **theirs}, process_id)
    finally:
        server.close()
        _answer(connections, f"Process 0 stopped the run: {error}" if error else None)
    if error:
        raise RendezvousError(error)


def check_in(address: str, process_id: int, num_processes: int, settings: dict, timeout: float) -> None:
    """A non-chief's side: reaches the chief at `address` (retrying for up to `timeout` seconds while it starts),
    sends this process's id, count and `settings`, and waits for the chief's verdict.

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
    message = {"process_id": process_id, "num_processes": num_processes, "settings": settings}
    try:
        with connection:
            connection.sendall((json.dumps(message) + "\n").encode())
            # the chief answers within its own timeout of its start, which was before this connection
            answer = json.loads(_read_line(connection, time.monotonic() + timeout + 10))
    except (OSError, ValueError) as error:
        raise RendezvousError(
            f"Process 0 at {address} closed the connection without an answer ({error}): see its output."
        ) from None
    if not answer.get("ok"):
        raise RendezvousError(str(answer.get("error")))
