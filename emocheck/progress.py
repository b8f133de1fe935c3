"""Progress bars that touch nothing when they are off.

``tqdm(disable=True)`` still takes tqdm's class-wide write lock in its constructor, and that lock holds
a multiprocessing lock shared with forked children. A child killed while holding it (the
fault-injection tests SIGKILL cache writers mid-write; a user's killed worker alike) leaves every
later bar of the parent waiting for it forever: a CI run hung there. `tqdm` here returns a plain
stand-in when ``disable`` is true and tqdm's own bar otherwise, with the same arguments.
"""
from __future__ import annotations

from tqdm.auto import tqdm as _tqdm


class _Off:
    """What the library calls on a bar (iteration, update, close, postfix, context), doing nothing."""

    def __init__(self, iterable=None):
        self._iterable = iterable

    def __iter__(self):
        return iter(self._iterable if self._iterable is not None else ())

    def __len__(self):
        return len(self._iterable)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        return None

    def close(self):
        return None

    def set_postfix(self, *args, **kwargs):
        return None

    def set_postfix_str(self, *args, **kwargs):
        return None

    def set_description(self, *args, **kwargs):
        return None


def tqdm(iterable=None, *args, disable: bool = False, **kwargs):
    if disable:
        return _Off(iterable)
    return _tqdm(iterable, *args, **kwargs)
