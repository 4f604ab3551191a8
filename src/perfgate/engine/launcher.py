"""The process boundary: the pytest process orchestrates and records; workers load, measure and exit.

One reusable worker per device runs ``SHARED`` jobs (imports and model loads are paid once per model);
``FRESH`` jobs get a worker of their own. A worker is replaced after anything that is not a result —
a crash (negative exit status: the signal's name), a timeout (terminated, then killed after a grace
period, whatever it was doing), an OOM or an error (a CUDA error poisons the process's context). A
lock file per device, held for each job, keeps two measurements off one device at once, also across
pytest-xdist workers and concurrent runs. Why a worker of our own and not pytest-xdist plus
pytest-timeout: see ARCHITECTURE.md ("The process boundary"). On a host with several GPUs, a CUDA job's
worker sees only the GPU placed for this process (``placement.py``), and the lock is that GPU's.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfgate.engine.scenarios.contract import JobReply
from perfgate.instruments.memory import MemorySampler
from perfgate.instruments.outcome import Outcome

if TYPE_CHECKING:
    from perfgate.engine.placement import GpuPlacement
    from perfgate.engine.scenarios.contract import Scenario
    from perfgate.instruments.cgroup import MemoryCgroup

__all__ = ["JobReply", "Launcher", "WorkerProcess", "describe_exit"]

LOG_TAIL_LINES = 20
# Set (to anything) to keep the whole log of a worker whose job failed, beside the temporary files: a
# GPU visit packs them, since only the log's tail is in the case's record.
KEEP_FAILED_LOGS = "PERFGATE_KEEP_FAILED_WORKER_LOGS"


class WorkerGone(Exception):
    """The worker closed its pipe: it died."""


class WorkerLate(Exception):
    """The worker did not answer before its deadline."""


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def crash_cause(log: str) -> str:
    """The line of a dead worker's stderr that names the fault: Python's "Fatal Python error" with the
    crashing frame (faulthandler lists it first), else the exception line of a traceback, else the last
    line that is not faulthandler's list of extension modules."""
    lines = [line.rstrip() for line in log.splitlines() if line.strip()]
    fatal = next((line for line in lines if "Fatal Python error" in line), None)
    if fatal is not None:
        frame = next((line.strip() for line in lines if line.lstrip().startswith('File "')), None)
        return fatal.strip() + (f"; crashing frame: {frame}" if frame else "")
    raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt|Exit)\b", line)]
    if raised:
        return f"last exception: {raised[-1]}"
    kept = [line for line in lines if not line.startswith("Extension modules:")]
    return f"last stderr line: {kept[-1].strip()}" if kept else ""


class WorkerProcess:
    """``python -m perfgate.engine.worker`` with JSON over two pipes; its stdout and stderr go to a log file."""

    def __init__(
        self,
        sys_path: list[str],
        start_timeout: float,
        grace: float,
        environment: dict[str, str] | None = None,
        python: str = sys.executable,  # another environment's interpreter (the library-upgrade gate)
        cwd: Path | None = None,  # where it runs: ``-m`` imports from there before any PYTHONPATH entry
    ) -> None:
        self.grace = grace
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        handle, log = tempfile.mkstemp(prefix="perfgate-worker-", suffix=".log")
        self.log_path = Path(log)
        env = {**os.environ, **(environment or {}), "PYTHONPATH": os.pathsep.join(sys_path)}
        started = time.monotonic()
        try:
            self.process = subprocess.Popen(
                [python, "-m", "perfgate.engine.worker", str(request_read), str(reply_write), str(os.getpid())],
                pass_fds=(request_read, reply_write),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,  # its own process group: a kill reaches compile workers it spawned
            )
        finally:
            for fd in (request_read, reply_write, handle):
                os.close(fd)
        self._outgoing = Connection(request_write, readable=False)
        self._incoming = Connection(reply_read, writable=False)
        self.pid = self.process.pid
        try:
            self.receive(start_timeout)  # "ready"
        except (WorkerGone, WorkerLate) as error:
            tail = self.log_tail()  # before close() removes the log: why it did not start
            self.kill()
            self.close()
            raise type(error)(f"{error}; {tail}" if tail else str(error)) from None
        self.start_seconds = time.monotonic() - started

    def send(self, message: dict[str, Any]) -> None:
        try:
            self._outgoing.send_bytes(json.dumps(message).encode())
        except (BrokenPipeError, OSError) as error:
            raise WorkerGone(str(error)) from None

    def receive(self, timeout: float) -> dict[str, Any]:
        try:
            if not self._incoming.poll(timeout):
                raise WorkerLate(f"no reply within {timeout:g} s")
            reply: dict[str, Any] = json.loads(self._incoming.recv_bytes())
        except (EOFError, OSError) as error:
            raise WorkerGone(str(error)) from None
        return reply

    def exit_status(self, wait: float = 10.0) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.process.wait(wait)
        return None

    def kill(self) -> str:
        """SIGTERM to the worker's process group, SIGKILL after the grace period; says which ended it."""
        ended = "it had already exited"
        for sig, wait in ((signal.SIGTERM, self.grace), (signal.SIGKILL, 10.0)):
            if self.process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(wait)
            ended = (
                "SIGTERM ended it"
                if sig == signal.SIGTERM
                else f"it ignored SIGTERM for the {self.grace:g} s grace period; SIGKILL ended it"
            )
        return ended

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            with self.log_path.open("rb") as stream:
                stream.seek(max(0, self.log_path.stat().st_size - 16384))
                text = stream.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def close(self, keep_log: bool = False) -> None:
        """Ends the worker; its log goes with it, or, with ``keep_log``, stays beside it as
        ``perfgate-worker-failed-PID.log`` (a case's record holds only the log's tail)."""
        with contextlib.suppress(WorkerGone):
            self.send({"kind": "exit"})
        if self.exit_status(wait=5.0) is None:
            self.kill()
        for connection in (self._outgoing, self._incoming):
            connection.close()
        if keep_log:
            with contextlib.suppress(OSError):
                self.log_path.rename(self.log_path.with_name(f"perfgate-worker-failed-{self.pid}.log"))
        self.log_path.unlink(missing_ok=True)


class Launcher:
    """Starts, reuses and replaces workers; runs one job at a time per device."""

    def __init__(
        self,
        sys_path: list[str],
        lock_dir: Path,
        grace: float = 5.0,
        start_timeout: float = 120.0,
        gpu: GpuPlacement | None = None,
        python: str = sys.executable,
    ) -> None:
        self.sys_path, self.lock_dir, self.grace, self.start_timeout = sys_path, lock_dir, grace, start_timeout
        self.gpu, self.python = gpu, python
        self._shared: dict[str, WorkerProcess] = {}

    def worker_environment(self, device: str) -> dict[str, str]:
        """A CUDA job's worker sees only this process's GPU, as cuda:0."""
        if device.startswith("cuda") and self.gpu is not None:
            return {"CUDA_VISIBLE_DEVICES": self.gpu.visible_id}
        return {}

    def lock_path(self, device: str) -> Path:
        name = self.gpu.lock_name if device.startswith("cuda") and self.gpu is not None else device.replace(":", "-")
        return self.lock_dir / f"{name}.lock"

    def submit(
        self,
        device: str,
        scenario: Scenario,
        payload: dict[str, Any],
        *,
        fresh: bool,
        timeout: float,
        cgroup: MemoryCgroup | None = None,
    ) -> JobReply:
        """Run one job. With ``cgroup`` the (fresh) worker runs inside that memory cgroup, and a kill
        by the kernel's OOM killer there is an ``oom`` outcome."""
        if cgroup is not None and not fresh:
            raise ValueError("a memory cgroup is for a fresh worker: a shared one would carry it into later jobs")
        with self.device_lock(device):
            return self._submit(device, scenario, payload, fresh=fresh, timeout=timeout, cgroup=cgroup)

    def _submit(
        self,
        device: str,
        scenario: Scenario,
        payload: dict[str, Any],
        *,
        fresh: bool,
        timeout: float,
        cgroup: MemoryCgroup | None,
    ) -> JobReply:
        reused = not fresh and device in self._shared
        try:
            worker = (
                self._shared[device]
                if reused
                else WorkerProcess(
                    self.sys_path, self.start_timeout, self.grace, self.worker_environment(device), self.python
                )
            )
        except (WorkerGone, WorkerLate) as error:
            return JobReply(Outcome.CRASHED, detail=f"worker did not start: {error}", log=str(error))
        if not fresh:
            self._shared[device] = worker
        info: dict[str, Any] = {
            "pid": worker.pid,
            "fresh": fresh,
            "start_seconds": 0.0 if reused else worker.start_seconds,
        }
        reply: JobReply | None = None
        sent = time.monotonic()
        try:
            if cgroup is not None:
                cgroup.add(worker.pid)
                info["cgroup"] = str(cgroup.path)
            sampler = MemorySampler(worker.pid) if scenario.samples_memory else None
            with sampler or contextlib.nullcontext():
                worker.send({"kind": "job", "scenario": scenario.name, "payload": payload})
                message = worker.receive(timeout)
            data = message.get("data", {})
            if sampler is not None and "serve_window" in data:
                data["sampled"] = sampler.peak_in(*data["serve_window"])
            info["load_seconds"] = data.pop("load_seconds", 0.0)
            reply = JobReply(Outcome(message["outcome"]), data, message.get("detail", ""), message.get("log", ""), info)
        except WorkerLate:
            ended = worker.kill()
            reply = JobReply(
                Outcome.TIMEOUT,
                detail=f"worker pid {worker.pid} killed after {timeout:g} s ({scenario.name}; {ended})",
                log=worker.log_tail(),
                worker=info,
            )
        except WorkerGone:
            status = describe_exit(worker.exit_status())
            tail = worker.log_tail()
            cause = crash_cause(tail)
            reply = JobReply(
                Outcome.CRASHED,
                detail=f"worker pid {worker.pid} {status}" + (f"; {cause}" if cause else ""),
                log=tail,
                worker=info,
            )
            if cgroup is not None and cgroup.oom_kills() > 0:
                reply.outcome = Outcome.OOM
                batch = f" at batch_size={payload['batch_size']}" if "batch_size" in payload else ""
                reply.detail = (
                    f"worker pid {worker.pid} killed by the kernel's OOM killer inside its memory cgroup "
                    f"({cgroup.path.name}){batch}"
                )
        finally:
            info["job_seconds"] = time.monotonic() - sent
            if reply is None or fresh or reply.outcome != Outcome.MEASURED:
                # Interrupted (pytest-timeout, Ctrl-C), done with, or not to be trusted: replace it.
                failed = reply is None or reply.outcome != Outcome.MEASURED
                keep = failed and bool(os.environ.get(KEEP_FAILED_LOGS))
                self._retire(device, worker, force=reply is None, keep_log=keep)
        return reply

    def _retire(self, device: str, worker: WorkerProcess, force: bool = False, keep_log: bool = False) -> None:
        if self._shared.get(device) is worker:
            del self._shared[device]
        if force:
            worker.kill()  # interrupted mid-job: it may be stuck in native code
        worker.close(keep_log)

    @contextlib.contextmanager
    def device_lock(self, device: str) -> Iterator[None]:
        """Held for each job; the upgrade gates hold it while they time their own workers."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        with self.lock_path(device).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def close(self) -> None:
        for device, worker in list(self._shared.items()):
            self._retire(device, worker)
