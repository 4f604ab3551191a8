"""The worker process: loads models, applies techniques, runs one scenario job at a time.

Started by ``launcher.WorkerProcess`` as ``python -m perfgate.engine.worker READ_FD WRITE_FD``. It says
``ready``, then answers each ``job`` message with one ``reply`` (JSON over two pipes, framed by
``multiprocessing.connection``), until ``exit`` or end of input. An exception in a job is a reply with
its outcome (``oom``, ``error``) and traceback; a fault that kills the interpreter (abort, segfault) is
seen by the parent as a closed pipe and an exit status, and ``faulthandler`` leaves the Python stack
in the log whose tail the parent records. Models and variants live only as long as this process.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import json
import os
import signal
import sys
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from perfgate.engine.scenarios import WorkerState, get_scenario
from perfgate.errors import JobOutcome
from perfgate.instruments.memory import is_cuda_error, is_out_of_memory, process_memory
from perfgate.instruments.outcome import Outcome

__all__ = ["main"]


def serve(message: dict[str, Any], state: WorkerState) -> dict[str, Any]:

    payload = message["payload"]
    try:
        data = get_scenario(message["scenario"]).run(payload, state)
        return {"kind": "reply", "outcome": Outcome.MEASURED, "data": data}
    except JobOutcome as outcome:
        return {"kind": "reply", "outcome": Outcome(outcome.outcome), "detail": str(outcome), "log": outcome.log,
                "data": {}}  # fmt: skip
    except Exception as error:
        reply: dict[str, Any] = {
            "kind": "reply",
            "outcome": Outcome.ERROR,
            "detail": f"{type(error).__name__}: {error}"[:2000],
            "log": traceback.format_exc()[-8000:],
            "data": {},
        }
        if is_out_of_memory(error):
            reply["outcome"] = Outcome.OOM
            reply["detail"] = f"out of memory at batch_size={payload.get('batch_size')}: {str(error)[:300]}"
            reply["data"] = {"at_failure": process_memory(), "batch_size": payload.get("batch_size")}
        elif is_cuda_error(error):
            reply["detail"] = f"CUDA error (the worker's CUDA context is not trusted after it): {reply['detail']}"
        return reply


def _send(connection: Connection, message: dict[str, Any]) -> None:
    connection.send_bytes(json.dumps(message, default=str).encode())


PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this worker if the pytest process dies (killed, or ended by os._exit), so
    no orphan keeps a core busy; elsewhere than Linux an idle worker still exits on end of input."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent was already gone before the request took effect
        os._exit(0)


def main(argv: list[str]) -> int:
    faulthandler.enable()  # on SIGSEGV/SIGABRT the Python stack goes to stderr, the parent's log
    _die_with_parent(int(argv[3]) if len(argv) > 3 else os.getppid())
    incoming = Connection(int(argv[1]), writable=False)
    outgoing = Connection(int(argv[2]), readable=False)
    _send(outgoing, {"kind": "ready", "pid": os.getpid(), "time": time.monotonic()})
    state = WorkerState()
    while True:
        try:
            message = json.loads(incoming.recv_bytes())
        except EOFError:  # the parent went away
            return 0
        if message.get("kind") == "exit":
            return 0
        _send(outgoing, serve(message, state))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
