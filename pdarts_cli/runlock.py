"""One writer per run directory: a lock file holding the writer's pid, host and start time.

A search or a training run takes ``run.lock`` in its run directory while it writes there and
removes it when it ends. A second writer is refused with who holds the lock. A lock whose
process is gone (killed: nothing removed the file) is stale and taken over: on the same host
the pid is checked, with the process's start time so that a reused pid does not count; a
lock from another host cannot be checked and is left to the user to remove.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from pdarts_cli.errors import RunDirError

LOCK_FILE = "run.lock"


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    process_start: str | None  # /proc/PID/stat's start time, where there is one
    since: str  # when the lock was taken, ISO 8601 UTC


class RunLockedError(RunDirError):
    """Another live process writes to this run directory."""


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _alive(holder: LockHolder) -> bool:
    """Whether the lock's process still runs (on this host)."""
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process with that pid
    start = _process_start(holder.pid)
    return holder.process_start is None or start is None or start == holder.process_start


def this_process() -> LockHolder:
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return LockHolder(os.getpid(), socket.gethostname(), _process_start(os.getpid()), since)


def read_holder(path: Path) -> LockHolder | None:
    """The lock file's holder; None when the file is missing or unreadable (a writer killed
    between creating and filling it)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LockHolder(
            int(data["pid"]), str(data["host"]), data.get("process_start"), str(data["since"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_unlocked(run_dir: Path) -> None:
    """Refuse when a live process holds ``run_dir``'s lock."""
    path = run_dir / LOCK_FILE
    if not path.exists():
        return
    holder = read_holder(path)
    if holder is None:
        return
    if holder.host != socket.gethostname():
        raise RunLockedError(
            f"{run_dir} is locked by pid {holder.pid} on host {holder.host} since "
            f"{holder.since}; if no run is using it any more, delete {path}"
        )
    if _alive(holder):
        raise RunLockedError(
            f"{run_dir} is in use by pid {holder.pid} (running since {holder.since}); "
            "wait for it to finish or stop it first"
        )


def _write(path: Path, holder: LockHolder, exclusive: bool) -> None:
    text = json.dumps(asdict(holder))
    if exclusive:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        return
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def acquire(run_dir: Path) -> LockHolder:
    """Take ``run_dir``'s lock, taking over a stale one; refuse a live holder."""
    path = run_dir / LOCK_FILE
    me = this_process()
    try:
        _write(path, me, exclusive=True)
    except FileExistsError:
        check_unlocked(run_dir)
        _write(path, me, exclusive=False)  # stale: take it over
    if read_holder(path) != me:  # another writer took it over at the same moment
        raise RunLockedError(f"{run_dir} was taken by another process while starting")
    return me


def release(run_dir: Path, holder: LockHolder) -> None:
    """Remove the lock if it is still ``holder``'s."""
    path = run_dir / LOCK_FILE
    if read_holder(path) == holder:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def run_lock(run_dir: Path | None, enabled: bool = True) -> Iterator[None]:
    """Hold ``run_dir``'s lock inside (nothing when ``run_dir`` is None or not ``enabled``,
    e.g. on a DDP rank other than 0)."""
    if run_dir is None or not enabled:
        yield
        return
    holder = acquire(run_dir)
    try:
        yield
    finally:
        release(run_dir, holder)
