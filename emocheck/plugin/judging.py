"""Running a claim: its evidence becomes a verdict-ready result on the worker that ran it."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from emocheck.plugin.claims import ClaimSpec, Evidence, claim_spec, format_statement
from emocheck.errors import ConfigError, EmocheckError, EvidenceError
from emocheck.profiles import Profile
from emocheck.storage import stable_hash

from emocheck.plugin.state import (CLAIM_ID_KEY, ClaimInconclusive, ClaimNotSupported, ClaimRefuted, EVIDENCE_KEY,
                                   STATE_KEY, _State)
from emocheck.plugin.collection import _module_id, _short_error


def _plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and getattr(value, "size", 2) == 1:
        try:
            return value.item()
        except Exception:  # noqa: BLE001
            pass
    return str(value)


def _claim_id(item) -> str:
    return item.stash.get(CLAIM_ID_KEY, item.nodeid)


def _seed(claim_id: str, profile: Profile) -> int:
    return int(stable_hash({"claim": claim_id, "profile_seed": profile.seed}, 8), 16) % (2**31)


def _base_result(item, spec: ClaimSpec, state: _State) -> dict:
    claim_id = _claim_id(item)
    module_id = _module_id(item)
    callspec = getattr(item, "callspec", None)
    params = {k: _plain(v) for k, v in (callspec.params.items() if callspec else [])}
    short = claim_id[len(module_id) + 2:] if module_id and claim_id.startswith(module_id + "::") else item.name
    return {
        "claim_id": claim_id,
        "short_id": f"{Path(module_id).stem}::{short}" if module_id else short,
        "module": module_id,
        "family": spec.family,
        "family_size": int(state.family_sizes.get(spec.family, 0)),
        "statement": format_statement(spec.statement, params),
        "statement_template": spec.statement,
        "model": str(params.get("model_name", "")) if params.get("model_name") is not None else "",
        "params": params,
        "settings": {
            "paired": spec.paired,
            "alternative": spec.alternative,
            "min_d": spec.min_d,
            "alpha": spec.effective_alpha(state.alpha),
            "ci_method": state.ci_method,
            "n_resamples": int(state.profile.bootstrap_resamples),
            "seed": _seed(claim_id, state.profile),
        },
        "status": "ok",
        "error": None,
        "comparison": None,
        "metrics": {},
        "samples": None,
        "registration_spec": _registration_spec(item, spec, state),
        "family_members": sorted(cid for members in state.declared.values()
                                 for cid, fam in members.items() if fam == spec.family),
    }


def _registration_spec(item, spec: ClaimSpec, state: _State) -> dict:
    """The claim's spec and hash (emocheck.plugin.spec_hash), computed once per item."""
    from emocheck.plugin.register_hooks import claim_registration_spec

    return claim_registration_spec(item, spec, state)


def _fmt(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def _direction(spec: ClaimSpec) -> str:
    if spec.alternative == "less":
        return f"d<-{spec.min_d:g}"
    if spec.alternative == "two-sided":
        return f"|d|>{spec.min_d:g}"
    return f"d>{spec.min_d:g}"


def _opposite(spec: ClaimSpec) -> str:
    if spec.alternative == "less":
        return f"d>-{spec.min_d:g}"
    if spec.alternative == "two-sided":
        return f"|d|<{spec.min_d:g}"
    return f"d<{spec.min_d:g}"


def _verdict_message(comp: dict, spec: ClaimSpec, prefix: str) -> str:
    alpha = comp["alpha"]
    level = 1 - alpha if comp["alternative"] == "two-sided" else 1 - 2 * alpha
    return (
        f"{prefix}: d = {comp['d']:.3f} ({level:.0%} CI [{comp['d_ci_low']:.3f}, {comp['d_ci_high']:.3f}], "
        f"n = {comp['n_treated']}/{comp['n_control']}), p = {_fmt(comp['p_value'])}, "
        f"p({_direction(spec)}) = {_fmt(comp['p_min_effect'])}, "
        f"p({_opposite(spec)}) = {_fmt(comp.get('p_refute'))}, alpha = {alpha:g}, "
        f"alternative = {comp['alternative']}"
    )


def policy_failure(verdict: str, state: _State, claim_id: str, message: str,
                   registration: str | None = None) -> BaseException | None:
    """The exception that fails a claim with this verdict under the session's --emocheck-fail-on policy
    (None: the claim does not fail). Shared by the worker (raw verdict) and the controller (final verdict)."""
    from emocheck.plugin.compare import claim_fails

    before = (state.baseline or {}).get(claim_id, {}).get("verdict") if state.baseline is not None else None
    if not claim_fails(verdict, state.fail_on, before=before, registration=registration):
        return None
    if state.fail_on == "changed":
        from emocheck.plugin.compare import regression

        return ClaimNotSupported(f"verdict changed against the baseline ({regression(before, verdict, registration)[1]}); "
                                 + message)
    return {"refuted": ClaimRefuted, "inconclusive": ClaimInconclusive}.get(verdict, ClaimNotSupported)(message)


_PENDING: list[BaseException] = []


def _raise_claim_error() -> None:
    raise _PENDING.pop()


def judge_evidence(ev: Evidence, spec: ClaimSpec, settings: dict):
    """The Comparison of one claim's recorded evidence (a plain function: usable without pytest).

    ``kind='samples'``: :func:`emocheck.stats.compare`; ``'directions'``:
    :func:`emocheck.stats.compare_directions`; ``'vs_null'``: :func:`emocheck.stats.compare_to_null`.
    """
    from emocheck.stats import compare, compare_directions, compare_to_null

    common = dict(alternative=spec.alternative, min_d=spec.min_d, alpha=settings["alpha"])
    if ev.kind == "directions":
        control = [[float("nan") if v is None else v for v in row] for row in ev.control]
        return compare_directions(ev.treated, control, **common)
    if ev.kind == "vs_null":
        return compare_to_null(ev.observed, ev.null, **common)
    return compare(
        ev.treated, ev.control, paired=spec.paired, ci_method=settings["ci_method"],
        n_resamples=settings["n_resamples"], seed=settings["seed"], **common,
    )


def _judge(item, spec: ClaimSpec, state: _State) -> tuple[dict, BaseException | None]:
    """Compute the claim's statistics from its evidence; return (result, exception to report)."""
    from emocheck.stats import verdict, Comparison

    result = _base_result(item, spec, state)
    ev = item.stash.get(EVIDENCE_KEY, None)
    if ev is None or not ev.recorded:
        how = "call evidence.record(treated=..., control=...)" if ev is not None else \
            "request the `evidence` fixture and call evidence.record(treated=..., control=...)"
        msg = f"claim test finished without recording evidence: {how}"
        result.update(status="error", error=msg)
        return result, EvidenceError(msg)
    result["metrics"] = dict(ev.metrics)
    result["kind"] = ev.kind
    if ev.kind == "vs_null":
        result["samples"] = {"observed": ev.observed, "null": ev.null}
    else:
        result["samples"] = {"treated": ev.treated, "control": ev.control, "sample_ids": ev.sample_ids}
    if ev.examples:
        result["examples"] = ev.examples
    s = result["settings"]
    if ev.kind == "vs_null":
        from emocheck.stats.nulls import unsupportable_reason

        why = unsupportable_reason(result["family_size"], len(ev.null), s["alpha"])
        if why:
            msg = f"family {spec.family!r} can never be supported: {why}"
            result.update(status="error", error=msg)
            return result, EvidenceError(msg)
    from emocheck import timing

    try:
        with timing.phase("statistics", model=result["model"] or None):
            comp = judge_evidence(ev, spec, s)
    except (EvidenceError, ValueError) as exc:
        msg = f"cannot judge the claim: {exc}"
        result.update(status="error", error=msg)
        return result, EvidenceError(msg)
    # Design numbers (direction rank and permutation p, null rank, tau...) travel as metrics; a
    # metric the test recorded itself under the same name wins.
    for key, value in comp.extra.items():
        result["metrics"].setdefault(key, value)
    cdict = comp.to_dict()
    result["comparison"] = cdict
    raw = verdict(Comparison.from_dict(cdict), comp.p_value, comp.p_min_effect, comp.p_refute)
    result["verdict_uncorrected"] = raw
    # What the test reports now. Correction only raises p-values, so an inconclusive claim is final here; a
    # supported or refuted one may still become inconclusive, which the controller settles at session end.
    result["verdict_shown"] = raw
    props = [
        ("emocheck_family", spec.family),
        ("emocheck_d", f"{comp.d:.6g}"),
        ("emocheck_d_ci", f"[{comp.d_ci_low:.6g}, {comp.d_ci_high:.6g}]"),
        ("emocheck_p_raw", f"{comp.p_value:.6g}"),
        ("emocheck_p_min_effect_raw", f"{comp.p_min_effect:.6g}"),
        ("emocheck_p_refute_raw", f"{comp.p_refute:.6g}"),
        ("emocheck_verdict_uncorrected", raw),
    ]
    item.user_properties.extend(props)
    what = {"supported": "claim supported before correction", "refuted": "claim refuted (before correction)",
            "inconclusive": "claim inconclusive (neither supported nor refuted, before any correction)"}[raw]
    return result, policy_failure(raw, state, result["claim_id"], _verdict_message(cdict, spec, what))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    __tracebackhide__ = True
    state = item.config.stash.get(STATE_KEY, None)
    spec = None
    spec_error = None
    try:
        spec = claim_spec(item) if state is not None else None
    except ConfigError as exc:
        spec_error = exc
    result = None
    if spec is not None and call.when == "call":
        if call.excinfo is None:
            result, exc = _judge(item, spec, state)
            if exc is not None:
                # Raise through a one-line frame so the report shows just the message.
                _PENDING.append(exc)
                try:
                    _raise_claim_error()
                except BaseException:  # noqa: BLE001
                    call.excinfo = pytest.ExceptionInfo.from_current()
        else:
            result = _base_result(item, spec, state)
            value = call.excinfo.value
            if call.excinfo.errisinstance(pytest.skip.Exception):
                result.update(status="skipped", error=str(value) or "skipped")
            elif isinstance(value, EmocheckError):
                result.update(status="error", error=f"{type(value).__name__}: {value}")
            else:
                result.update(status="failed", error=f"{type(value).__name__}: {value}".strip())
    elif spec is not None and call.when == "setup" and call.excinfo is not None:
        result = _base_result(item, spec, state)
        value = call.excinfo.value
        if call.excinfo.errisinstance(pytest.skip.Exception):
            result.update(status="skipped", error=str(value) or "skipped")
        else:
            result.update(status="error", error=f"{type(value).__name__}: {value}")
    elif spec_error is not None and call.when == "setup" and call.excinfo is None:
        _PENDING.append(spec_error)
        try:
            _raise_claim_error()
        except BaseException:  # noqa: BLE001
            call.excinfo = pytest.ExceptionInfo.from_current()

    report = yield
    if call.excinfo is not None and report.failed and isinstance(call.excinfo.value, EmocheckError):
        # errors.py's promise: a user's mistake is shown as its message, not a traceback through
        # the library (which, for a fixture shared by ten claims, ran to hundreds of lines).
        report.longrepr = _short_error(call.excinfo)
    if result is not None:
        report.emocheck = result
        if call.when == "call":
            report.user_properties = list(item.user_properties)
    return report


def pytest_report_teststatus(report, config):
    """ERROR for a claim that could not be judged; for a judged claim its verdict: REFUTED / INCONCLUSIVE
    as failures when the --emocheck-fail-on policy fails them, else as outcomes of their own (letters r and
    i, counted in the summary line as "2 refuted, 12 inconclusive")."""
    data = getattr(report, "emocheck", None)
    if not data or report.when != "call":
        return None
    if report.failed and data.get("status") == "error":
        return "error", "E", ("ERROR", {"red": True})
    shown = data.get("verdict_shown") if data.get("status") == "ok" else None
    if shown in ("refuted", "inconclusive"):
        word = shown.upper()
        if report.failed:
            return "failed", "F", (word, {"red": True})
        return shown, shown[0], (word, {"yellow": True})
    return None
