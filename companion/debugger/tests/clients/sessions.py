"""Short debug sessions with python-socketio's threaded client (socketio.Client), back to
back: connect with a token, wait for `connected`, a few debug_command round trips,
disconnect. Prints one JSON line: sessions, failed connects, lost replies, failed replies,
and the Engine.IO pings the client received.

    python3 sessions.py URL TOKEN COUNT [--raw]

The threaded client reads its WebSocket in one thread and writes it in another, on one
ssl.SSLSocket. OpenSSL does not support a read and a write at once on one connection:
when a write runs while a read is returning "would block", the read reports
SSL_ERROR_SYSCALL without an error, Python's ssl module turns that into a clean end of
stream, and websocket-client into "Connection to remote host was lost" (python-engineio
issue 461, python-socketio issue 1568). By default the sessions use the client's public
`websocket_extra_options` hook to give websocket-client a socket class that never reads
and writes at once, so what is counted is what the server does. `--raw` leaves the client
as it is (the README's measurement of the client's own race).
"""

import json
import queue
import select
import ssl
import sys
import threading
import time

import socketio
import websocket
from websocket._exceptions import WebSocketConnectionClosedException, WebSocketTimeoutException

NS = "/api/debug"
COMMANDS = ["45 DE AD 00 00", "44 00 01 00 00", "44 00 02 00 00 00 01"]
pings = 0
pings_lock = threading.Lock()


class CountingWebSocket(websocket.WebSocket):
    """Counts Engine.IO PING packets ("2") from the server."""

    def recv(self):
        data = super().recv()
        if data == "2":
            global pings
            with pings_lock:
                pings += 1
        return data


class SerializedWebSocket(CountingWebSocket):
    """Waits for data outside a lock and reads under it; writes under the same lock."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._io = threading.Lock()

    def _recv(self, bufsize):
        timeout = self.sock.gettimeout() if self.sock else None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            sock = self.sock
            if sock is None:
                raise WebSocketConnectionClosedException("socket is already closed.")
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                break
            left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if left <= 0:
                raise WebSocketTimeoutException("Connection timed out")
            try:
                ready, _, _ = select.select([sock], [], [], left)
            except (OSError, ValueError):
                raise WebSocketConnectionClosedException("socket is already closed.")
            if ready:
                break
        with self._io:
            return super()._recv(bufsize)

    def _send(self, data):
        with self._io:
            return super()._send(data)


def session(url, token, raw):
    """One session: None when every reply came, else what went wrong."""
    cls = CountingWebSocket if raw else SerializedWebSocket
    sio = socketio.Client(reconnection=False, ssl_verify=False, websocket_extra_options={"class_": cls})
    replies = queue.Queue()
    connected = queue.Queue()
    sio.on("debug_response", replies.put, namespace=NS)
    sio.on("connected", connected.put, namespace=NS)
    try:
        try:
            sio.connect(url, namespaces=[NS], transports=["websocket"], auth={"token": token}, wait_timeout=5)
            status = connected.get(timeout=5)
        except Exception as e:  # noqa: BLE001 - any failure to connect is a failed session
            return ("connect", repr(e))
        if status.get("status") != "ok":
            return ("connect", repr(status))
        for command in COMMANDS:
            sio.emit("debug_command", {"command": command}, namespace=NS)
            try:
                reply = replies.get(timeout=5)
            except queue.Empty:
                return ("lost", command)
            if not reply.get("success"):
                return ("failed", repr(reply))
        return None
    finally:
        sio.disconnect()


def main():
    url, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    raw = "--raw" in sys.argv[4:]
    outcome = {"sessions": 0, "connect": 0, "lost": 0, "failed": 0, "examples": []}
    started = time.monotonic()
    for _ in range(count):
        problem = session(url, token, raw)
        outcome["sessions"] += 1
        if problem:
            outcome[problem[0]] += 1
            if len(outcome["examples"]) < 5:
                outcome["examples"].append(problem)
    outcome["pings"] = pings
    outcome["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main()
