#!/usr/bin/env python3
"""TEST STAND-IN for a classroom box's vLLM (not vLLM; molecule only).

Serves the project's fake OpenAI server (fake_openai_server.py, copied beside this file: vLLM's routes, the
open `/health` among them) on the box's network address, and on SIGTERM writes how many completions were in
flight (the requests a stopped box costs) to --inflight-file before it exits, and how it counted them to the
same name with the suffix .json.

"In flight" is every completion that had reached the box: those being answered, and those whose bytes
were already on one of its connections (an open keep-alive connection, or one the kernel had accepted but
the server had not yet taken) when the box went away. Counting only the ones being answered would call a
request lost "for no reason" when it merely arrived a moment before the stop. So the stop first shuts the
box to new connections (refused, as by a box that is gone), lets what is already on its way arrive, then
counts and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import socket
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import fake_openai_server as fake

COMPLETION = b"POST "
PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT
# How long the stop lets a request in transit settle: read off the socket but not yet marked, or on a
# connection the kernel had accepted but the server had not yet taken.
SETTLE_S = 0.02
# How often the server loop looks for a stop when no connection comes.
STOP_POLL_S = 0.02


def carries_completion(conn: socket.socket, wait_s: float = 0.0) -> bool:
    """Whether a completion request's first bytes are waiting on the connection, unread."""
    try:
        if wait_s and not select.select([conn], [], [], wait_s)[0]:
            return False
        return conn.recv(len(COMPLETION), PEEK).startswith(COMPLETION)
    except OSError:
        return False


class Tracker:
    """The box's connections and which of them are in the middle of a completion."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        self.busy: set[socket.socket] = set()
        # Once the stop has begun, every completion read is lost with the box, even one that ends (in an
        # error) before the count is taken.
        self.stopping = False
        self.late: set[socket.socket] = set()

    def started(self, conn: socket.socket) -> None:
        with self.lock:
            self.busy.add(conn)
            if self.stopping:
                self.late.add(conn)

    def in_flight(self, listener: socket.socket) -> dict[str, int]:
        """Completions being answered or already sent to the box, once nothing new can reach it."""
        # Take what the kernel has accepted, then close the door: a later connection is refused, as by a box
        # that is gone (the gateway retries it on another box), instead of slipping in uncounted.
        with self.lock:
            self.stopping = True
        taken = []
        listener.setblocking(False)
        while True:
            try:
                taken.append(listener.accept()[0])
            except OSError:
                break
        listener.close()
        # An idle keep-alive connection gets a FIN: the gateway sends nothing more on it. A request already on
        # its way still arrives, and counts.
        with self.lock:
            idle = self.open - self.busy
        for conn in idle:
            if not carries_completion(conn):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_WR)
        # The moment for such a request to arrive, and for one a worker has just read off its socket to be
        # marked busy; then everything on the box is where the count looks.
        time.sleep(SETTLE_S)
        backlog = sum(carries_completion(conn, SETTLE_S) for conn in taken)
        with self.lock:
            read = len(self.busy | self.late)
            waiting = sum(1 for conn in self.open - self.busy - self.late if carries_completion(conn))
            connections = len(self.open)
        return {"in_flight": read + waiting + backlog, "read_by_the_box": read, "unread_on_open": waiting,
                "unread_in_backlog": backlog, "open_connections": connections}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--behaviour", default="healthy", choices=sorted(fake.BEHAVIOURS))
    parser.add_argument("--model", default="classroom-tiny")
    parser.add_argument("--api-key-file", type=Path, help="file holding the Bearer key the box requires")
    parser.add_argument("--inflight-file", type=Path, required=True)
    args = parser.parse_args()
    key = args.api_key_file.read_text(encoding="utf-8").strip() if args.api_key_file else None
    base = fake.make_handler(args.model, fake.BEHAVIOURS[args.behaviour], key, None)
    tracker = Tracker()

    class Handler(base):  # type: ignore[misc,valid-type]
        def parse_request(self) -> bool:
            # Called as soon as the request line is read: from here the request has left the socket.
            if self.raw_requestline.startswith(COMPLETION):
                tracker.started(self.connection)
            return bool(super().parse_request())

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            finally:
                with tracker.lock:
                    tracker.busy.discard(self.connection)

    stopping = threading.Event()

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
            # Registered before its thread starts, so a request it already carries is seen at a stop.
            with tracker.lock:
                tracker.open.add(request)
            super().process_request(request, client_address)

        def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
            with tracker.lock:
                tracker.open.discard(request)
            super().shutdown_request(request)

        def handle_error(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
            if not stopping.is_set():  # a stream cut by the stop is the point, not an error to print
                super().handle_error(request, client_address)

        def service_actions(self) -> None:
            # Between two accepts, never inside one: a connection just accepted is registered by now, and no
            # new one is taken while the count runs.
            if not stopping.is_set():
                return
            counted = tracker.in_flight(self.socket)
            counted["counted_at_wall_ms"] = int(time.time() * 1000)
            args.inflight_file.with_suffix(".json").write_text(json.dumps(counted) + "\n", encoding="utf-8")
            args.inflight_file.write_text(f"{counted['in_flight']}\n", encoding="utf-8")
            os._exit(0)  # drop open streams at once, as a box that goes away does

    server = Server((args.host, args.port), Handler)
    # The handler only marks the stop: it may interrupt the main thread anywhere, an accept included.
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    server.serve_forever(poll_interval=STOP_POLL_S)


if __name__ == "__main__":
    main()
