"""The transport the test doubles on PATH share (the fake ``gh``, ``perfgate`` through the fork server):
a bash client that sends its call as NUL-separated fields over the loopback interface and prints the
answer, and the server's side of that exchange.

Request: fields ending with an ``END`` field. Answer: the exit code and the length of standard output on
a line each, standard output, then standard error until the server closes the connection.
"""

from __future__ import annotations

import socket
import stat
from pathlib import Path

# Reads the answer with bash builtins alone: a client runs thousands of times in a season.
ANSWER_READER = r"""IFS= read -r code <&3
IFS= read -r length <&3
LC_ALL=C
if [ "$length" -gt 0 ]; then IFS= read -r -d '' -N "$length" out <&3; printf '%s' "$out"; fi
while IFS= read -r line || [ -n "$line" ]; do printf '%s\n' "$line" >&2; done <&3
exit "$code"
"""


def write_client(path: Path, port: int, request: str) -> None:
    """A bash client at ``path``: ``request`` writes the call's fields to fd 3 (ending with ``END``)."""
    path.write_text(f"#!/usr/bin/env bash\nexec 3<>/dev/tcp/127.0.0.1/{port} || exit 98\n{request}\n{ANSWER_READER}")
    path.chmod(path.stat().st_mode | stat.S_IEXEC | stat.S_IXGRP | stat.S_IXOTH)


def read_request(connection: socket.socket) -> list[str]:
    """The call's NUL-separated fields, without the ``END`` field."""
    data = b""
    while not data.endswith(b"\0END\0") and data != b"END\0":
        # Acknowledge at once: the client writes its request in a few small pieces, and Nagle's algorithm
        # holds each piece until the last is acknowledged, which delayed ACKs put off by 40 ms.
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode().split("\0")[:-2]


def answer(connection: socket.socket, code: int, out: bytes, err: bytes) -> None:
    connection.sendall(f"{code}\n{len(out)}\n".encode() + out + err)
