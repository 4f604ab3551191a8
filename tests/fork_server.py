"""The ``perfgate`` console script with its imports paid once: a server process that has imported the CLI
forks a child per call, which takes the caller's arguments, working directory and environment, runs
``perfgate.cli.main`` and exits with its status.

A replay of many nights runs perfgate's commands hundreds of times; each fresh interpreter spends
~0.4 s importing before it does ~20 ms of work. The child runs the same ``main`` a fresh process would,
with the caller's environment and directory; only the imports are shared (the CLI keeps no state between
calls). The client on PATH is a bash script (``CLIENT``) that speaks over the loopback interface, as the
fake ``gh`` does (tests/fake_gh.py).

    python -m tests.fork_server PORT_FILE     # writes the port it listens on, then serves until killed
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.loopback import answer, read_request, write_client

REQUEST = r"""printf '%s\0' "$PWD" "$#" >&3
if [ "$#" -gt 0 ]; then printf '%s\0' "$@" >&3; fi
env -0 >&3
printf 'END\0' >&3"""


def _child(connection: socket.socket) -> None:
    """In the forked child: run one call and answer it; never returns."""
    code = 70
    out_path = err_path = ""
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the command's own subprocesses are waited for
        fields = read_request(connection)
        cwd, count = fields[0], int(fields[1])
        args = fields[2 : 2 + count]
        os.environ.clear()
        os.environ.update(entry.split("=", 1) for entry in fields[2 + count :] if "=" in entry)  # type: ignore[misc]
        os.chdir(cwd)
        out_path, err_path = f"/tmp/perfgate-fork-{os.getpid()}.out", f"/tmp/perfgate-fork-{os.getpid()}.err"
        with open(out_path, "w+b") as out, open(err_path, "w+b") as err:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the child's stdout until it exits
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            sys.argv = ["perfgate", *args]
            from perfgate.cli import main

            try:
                code = main(args)
            except SystemExit as done:  # argparse's --help and usage errors
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 2)
            except BaseException as error:  # as a fresh interpreter would: a traceback, exit 1
                import traceback

                traceback.print_exception(error)
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
        answer(connection, code, Path(out_path).read_bytes(), Path(err_path).read_bytes())
    finally:
        for path in (out_path, err_path):
            with contextlib.suppress(OSError):
                if path:
                    os.unlink(path)
        os._exit(0)


def serve(port_file: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # the report's import, paid once

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port_file.write_text(str(listener.getsockname()[1]))
    while True:
        connection, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            _child(connection)
        connection.close()


@contextlib.contextmanager
def running(bin_dir: Path) -> Iterator[Path]:
    """A fork server for this interpreter, and ``perfgate`` in ``bin_dir`` calling it; stopped after."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    port_file = bin_dir / ".fork-server-port"
    root = Path(__file__).resolve().parent.parent
    server = subprocess.Popen([sys.executable, "-m", "tests.fork_server", str(port_file)], cwd=root)
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the fork server did not start (exit {server.poll()})")
            time.sleep(0.05)
        client = bin_dir / "perfgate"
        write_client(client, int(port_file.read_text()), REQUEST)
        yield client
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
