"""Inter-process file locks, file modes from the umask, and removal of what killed writers leave.

Locks are flock(2) on `<path>.lock`, re-entrant within a thread, and the lock file is removed on
release (safe: a process that wakes on an unlinked lock file sees its inode has no name and retries;
filelock >= 4 does the same check, so the two interoperate). `clean_stale(folder)` runs on the first
write into a folder: temporaries `.<name>.<pid>.<rand>.tmp` older than this process whose writer is gone,
and empty lock files nobody holds, are removed. Modes come from the umask at write time, not at import.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Iterator

RUN_STARTED = time.time()   # temporaries older than this, from a writer that is gone, are stale


# ----------------------------------------------------------------------------------------- modes


def current_umask() -> int:
    """The process umask now (not at import: a session may change it), without changing it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)   # no /proc: the classic read-by-setting (briefly process-wide)
    os.umask(mask)
    return mask


def file_mode() -> int:
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    return 0o777 & ~current_umask()


# ----------------------------------------------------------------------------------------- cleanup


_CLEANED: set[str] = set()
LEGACY_TMP_AGE = 3600.0


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's live process
        return True
    return True


def _tmp_writer_pid(name: str) -> int | None:
    parts = name.split(".")
    # ".<name>.<pid>.<rand>.tmp" -> [..., pid, rand, "tmp"]
    if len(parts) >= 4 and parts[-1] == "tmp" and parts[-3].isdigit():
        return int(parts[-3])
    return None


def clean_stale(folder: str | os.PathLike, *, older_than: float | None = None, force: bool = False) -> list[Path]:
    """Remove temporaries left by killed writers and empty, unheld lock files in `folder`.

    A temporary is removed when it is older than `older_than` (default: this process's start) and its
    writer (pid in the name) is no longer running; one without a pid only when over an hour old. Once per folder
    per process unless `force`. Returns what was removed."""
    folder = Path(folder)
    if not force and str(folder) in _CLEANED:
        return []
    _CLEANED.add(str(folder))
    cutoff = RUN_STARTED if older_than is None else older_than
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        try:
            if name.startswith(".") and name.endswith(".tmp"):
                st = entry.stat(follow_symlinks=False)
                pid = _tmp_writer_pid(name)
                # A temporary without a pid (mkstemp's names, from older versions) may belong to a live
                # writer in another process: only one over an hour old is taken to be abandoned.
                stale = (st.st_mtime < min(cutoff, time.time() - LEGACY_TMP_AGE) if pid is None
                         else st.st_mtime < cutoff and not _pid_alive(pid))
                if stale:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
                    removed.append(Path(entry.path))
            elif name.endswith(".lock") and entry.is_file(follow_symlinks=False):
                if entry.stat().st_size == 0 and _remove_unheld_lock(Path(entry.path)):
                    removed.append(Path(entry.path))
        except OSError:   # vanished meanwhile, or not ours to remove
            continue
    return removed


def _remove_unheld_lock(lock_path: Path) -> bool:
    if str(lock_path) in _held():
        return False
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: leave them
        return False
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False   # somebody holds it
    try:
        if _same_file(fd, lock_path):
            os.unlink(lock_path)   # while holding it: a waiter on this inode sees nlink 0 and retries
            return True
        return False
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------- locks


_LOCAL = threading.local()


def _held() -> dict[str, int]:
    if not hasattr(_LOCAL, "held"):
        _LOCAL.held = {}
    return _LOCAL.held


def _same_file(fd: int, path: Path) -> bool:
    st = os.fstat(fd)
    if st.st_nlink == 0:
        return False
    try:
        return os.path.samestat(st, os.stat(path))
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, timeout: float = -1) -> Iterator[None]:
    """Inter-process lock on `path` + '.lock' (xdist workers, parallel sessions), re-entrant per thread.

    The lock file is removed on release; a process that was waiting on the removed file notices
    (its inode has no name any more) and takes the lock anew, so removal never lets two in."""
    lock_path = Path(str(path) + ".lock")
    held = _held()
    key = str(lock_path)
    if held.get(key):
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        from filelock import FileLock

        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(key, timeout=timeout):
            held[key] = 1
            try:
                yield
            finally:
                held.pop(key, None)
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, file_mode())
        try:
            if deadline is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"could not lock {lock_path} within {timeout} s") from None
                        time.sleep(0.01)
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, lock_path):
            break
        os.close(fd)   # the file was removed or replaced while we waited: lock the current one
    held[key] = 1
    try:
        yield
    finally:
        held.pop(key, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        os.close(fd)
