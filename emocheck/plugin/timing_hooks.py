"""Run-time breakdown of a claims session: each claim test's setup and call is one timing phase
named after its hypothesis module (``test_q1_write_in.py`` -> ``q1_write_in``), so everything a session
spends in tests is attributed - to a library phase opened inside it (extraction, generation, fluency,
evaluators, statistics, figures, heads, circuits, alignment), or else to the module's own code - and
the controller prints the one-line summary (``emocheck.timing.one_line``) at the end of the session.

Only claim tests are timed (the library's unit tests are not research work).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from emocheck.plugin.claims import claim_spec
from emocheck.plugin.state import STATE_KEY
from emocheck.errors import ConfigError


def phase_name(item) -> str:
    """The timing phase of a claim test: its module's file stem without the ``test_`` prefix."""
    stem = Path(str(getattr(item, "fspath", item.nodeid.split("::")[0]))).stem
    return stem[5:] if stem.startswith("test_") else stem


def _model(item) -> str | None:
    params = getattr(getattr(item, "callspec", None), "params", {}) or {}
    for key in ("model_name", "model_pair"):
        if isinstance(params.get(key), str):
            return params[key]
    return None


def _is_claim(item) -> bool:
    if item.config.stash.get(STATE_KEY, None) is None:
        return False
    try:
        return claim_spec(item) is not None
    except ConfigError:
        return False


def _timed(item):
    if not _is_claim(item):
        return None
    from emocheck import timing

    return timing.phase(phase_name(item), model=_model(item), test=item.nodeid)


class TimingPlugin:
    """Registered per config by ``pytest_configure`` (beside the session plugin)."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item):
        ctx = _timed(item)
        if ctx is None:
            return (yield)
        with ctx:
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        ctx = _timed(item)
        if ctx is None:
            return (yield)
        with ctx:
            return (yield)


def summary_lines(phase_timing: dict | None, session_wall: dict | None = None) -> list[str]:
    """The end-of-session lines: the one-line breakdown and how much of the run it covers."""
    from emocheck import timing

    summ = (phase_timing or {}).get("phases")
    if not summ:
        return []
    line = "emocheck " + timing.one_line(summ)
    run = (session_wall or {}).get("run")
    if run:
        line += f"; session run {float(run):.1f}s wall"
    return [line]
