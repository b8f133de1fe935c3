"""Disabled progress bars never take tqdm's (fork-shared) write lock (emocheck.progress)."""
from __future__ import annotations

import tqdm.std

from emocheck import progress


def test_disabled_bar_never_takes_the_tqdm_lock(monkeypatch):
    taken = []
    real = tqdm.std.tqdm.get_lock

    def spy():
        taken.append(1)
        return real()

    monkeypatch.setattr(tqdm.std.tqdm, "get_lock", staticmethod(spy))
    bar = progress.tqdm(total=3, desc="x", disable=True, leave=False)
    bar.update(2)
    bar.set_postfix(a=1)
    bar.close()
    assert list(progress.tqdm([1, 2, 3], disable=True)) == [1, 2, 3]
    with progress.tqdm(range(2), disable=True) as b:
        assert list(b) == [0, 1]
    assert taken == []
    on = progress.tqdm([1, 2], disable=False, leave=False)     # an enabled bar is tqdm's own
    assert isinstance(on, tqdm.std.tqdm) and list(on) == [1, 2]
    assert taken
