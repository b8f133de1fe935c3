"""emocheck.filelocks: re-entrant locks whose files are removed, cleanup of what killed writers leave,
file modes from the umask at write time (issue 15, finding 6)."""
import multiprocessing as _mp
import os
import stat
import time as _time

from emocheck import filelocks, storage


def test_lock_is_reentrant_and_its_file_is_removed(tmp_path):
    target = tmp_path / "f"
    with storage.file_lock(target):
        with storage.file_lock(target):   # nested use in one thread does not deadlock
            assert (tmp_path / "f.lock").exists()
        assert (tmp_path / "f.lock").exists()
    assert not (tmp_path / "f.lock").exists()


def test_stale_temporaries_of_dead_writers_and_empty_locks_are_cleaned_on_next_write(tmp_path):
    ctx = _mp.get_context("fork")
    child = ctx.Process(target=lambda: None)
    child.start()
    child.join()
    dead = child.pid
    old = _time.time() - 3600
    stale = tmp_path / f".x.bin.{dead}.abcd.tmp"
    live = tmp_path / f".y.bin.{os.getpid()}.abcd.tmp"     # this process: still writing
    fresh = tmp_path / f".z.bin.{dead}.abcd.tmp"           # newer than the run: not touched
    for p in (stale, live, fresh):
        p.write_bytes(b"partial")
    os.utime(stale, (old, old))
    os.utime(live, (old, old))
    lock = tmp_path / "x.bin.lock"
    lock.write_bytes(b"")
    filelocks._CLEANED.discard(str(tmp_path))
    storage.atomic_write_bytes(tmp_path / "x.bin", b"new")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert stale.name not in left and lock.name not in left
    assert live.name in left and fresh.name in left


def test_file_modes_follow_the_umask_at_write_time(tmp_path):
    old = os.umask(0o002)
    try:
        storage.atomic_write_bytes(tmp_path / "g.bin", b"x")
        assert stat.S_IMODE(os.stat(tmp_path / "g.bin").st_mode) == 0o664
        os.umask(0o077)
        storage.atomic_write_bytes(tmp_path / "p.bin", b"x")
        assert stat.S_IMODE(os.stat(tmp_path / "p.bin").st_mode) == 0o600
    finally:
        os.umask(old)


def test_a_temporary_without_a_pid_is_removed_only_when_long_abandoned(tmp_path):
    recent = tmp_path / ".a.bin.k3j2h1.tmp"        # mkstemp-style name: its writer may still be running
    ancient = tmp_path / ".b.bin.x9y8z7.tmp"
    for p, age in ((recent, 600), (ancient, 7200)):
        p.write_bytes(b"partial")
        t = _time.time() - age
        os.utime(p, (t, t))
    removed = storage.clean_stale(tmp_path, older_than=_time.time(), force=True)
    assert removed == [ancient] and recent.exists()
