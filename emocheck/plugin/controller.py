"""Controller side: collect every claim result, correct within declared families, write the
report files, turn late failures into failures, and print the summary."""
from __future__ import annotations

import contextlib
import os
import time

import pytest

from emocheck.errors import EmocheckError
from emocheck.profiles import results_dir

from emocheck.plugin.state import _State


class _SessionPlugin:
    """Controller-side hooks (registered per config, so nested/in-process sessions stay apart)."""

    def __init__(self, config: pytest.Config, state: _State) -> None:
        self.config = config
        self.state = state

    def pytest_runtest_logreport(self, report) -> None:
        data = getattr(report, "emocheck", None)
        if not data or self.state.is_worker:
            return
        self.state.results[data["claim_id"]] = data
        if report.when == "call":
            self.state.reports[data["claim_id"]] = report
            xml = _junit(self.config)
            if xml is not None:
                try:
                    self.state.junit_reporters[data["claim_id"]] = xml.node_reporter(report)
                except Exception:  # noqa: BLE001 - junitxml internals changed: no late properties
                    pass

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session):
        now = time.perf_counter()
        self.state.times["collection"] = now - self.state.t0
        self.state.times["_run_start"] = now
        result = yield
        if not self.state.is_worker and self.state.results:
            _finish(session, self.state)
        return result

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session) -> None:
        # Per-phase timing is written lazily; an xdist worker writes its file before it reports back, so the
        # controller's session.json sees every worker's phases.
        if self.state.is_worker:
            from emocheck import timing

            timing.flush()

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config) -> None:
        _terminal_summary(terminalreporter, self.state)


def _junit(config: pytest.Config):
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pragma: no cover
        return None
    return config.stash.get(xml_key, None)


def _finish(session, state: _State) -> None:
    from emocheck.plugin import report as rep

    from emocheck import timing

    results = list(state.results.values())
    with timing.phase("statistics", part="correction"):
        rows, families = rep.finalize(results, state.correction)
    state.rows, state.families = rows, families
    settings = state.settings()
    try:
        out_dir = results_dir(state.profile, "statistics")
        from emocheck.plugin.register_hooks import apply_registration, session_json

        state.times["run"] = time.perf_counter() - state.times.pop("_run_start", state.t0)
        apply_registration(state, results, rows, families)
        if state.baseline is not None:
            from emocheck.plugin.compare import compare_verdicts

            state.baseline_comparison = compare_verdicts(state.baseline, {
                r["claim_id"]: {"verdict": r["verdict"], "d": r.get("d"), "registration": r.get("registration")}
                for r in rows})
        report_start = time.perf_counter()
        with timing.phase("statistics", part="report files"):      # its figures are a phase of their own
            state.paths = rep.write_statistics(results, rows, families, settings, out_dir,
                                               session_started=state.started, registration=state.registration,
                                               baseline=state.baseline_comparison, notes=state.notes)
        state.times["report"] = time.perf_counter() - report_start
        timing.flush()
        state.paths["settings"] = session_json(session, state, results, rows, families, out_dir)
        with contextlib.suppress(OSError):    # older runs' timing files; session.json has this run's
            timing.prune(settings["results_dir"], str(settings["profile"]))
        # session.json was rewritten with the provenance record: seal the folder again (manifest, pruning).
        rep.seal_statistics(out_dir, state.paths, results, settings, session_started=state.started, notes=state.notes)
    except (EmocheckError, OSError) as exc:
        # The preflight checked the folder; it can still fill up or vanish. One message, no INTERNALERROR.
        state.notes.append(f"statistics were NOT written ({type(exc).__name__}: {exc}); "
                           "free space or fix the results folder and run again")
        session.testsfailed += 1
        state.paths = {}
        return
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        rep.append_github_summary(state.paths["report"].read_text(encoding="utf-8"), summary)

    _settle_outcomes(session, state)
    _junit_late_properties(state)

    if state.mlflow:
        from emocheck.plugin.tracking import log_session

        try:
            state.mlflow_run = log_session(state.mlflow_uri, settings, rows, state.paths)
        except Exception as exc:  # noqa: BLE001 - the claims' verdicts stand; say loudly what failed
            state.notes.append(f"MLflow logging to {state.mlflow_uri} failed: {type(exc).__name__}: {exc}")


def _final_message(row: dict, state: _State) -> str:
    from emocheck.plugin import report as rep

    return (
        f"claim {row['verdict']} after {state.correction} correction (family {row['family']!r}: "
        f"{row['family_declared']} declared, {row['family_run']} run): p = {rep.fmt_p(row['p_value'])} -> "
        f"{rep.fmt_p(row['p_adjusted'])}, p(d>min_d) = {rep.fmt_p(row['p_min_effect'])} -> "
        f"{rep.fmt_p(row['p_min_effect_adjusted'])}, p(d<min_d) = {rep.fmt_p(row['p_refute'])} -> "
        f"{rep.fmt_p(row['p_refute_adjusted'])}, alpha = {row['alpha']:g}"
        + (f"; {row['reason']}" if row.get("reason") else "")
    )


def _settle_outcomes(session, state: _State) -> None:
    """Give every judged claim's test the outcome of its FINAL verdict under the --emocheck-fail-on policy.

    A worker reports the verdict before correction: an inconclusive claim is final there (correction only
    raises p-values), but a supported or refuted one may become inconclusive, and under ``changed`` the
    pre-registration status decides too. Each claim whose outcome or verdict moved is re-filed: the report's
    outcome and message, the terminal's stats (so the summary line counts it under its new word),
    ``session.testsfailed`` (the exit status), the ``--lf`` cache and, in ``_junit_late_properties``, JUnit.
    """
    from emocheck.plugin.judging import policy_failure

    config = session.config
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    lfplugin = config.pluginmanager.get_plugin("lfplugin")
    state.late_failures = []
    for row in state.rows:
        report = state.reports.get(row["claim_id"])
        data = getattr(report, "emocheck", None)
        if report is None or not data or row.get("status") != "ok" or data.get("status") != "ok":
            continue
        exc = policy_failure(row["verdict"], state, row["claim_id"], _final_message(row, state),
                             registration=row.get("registration"))
        fails = exc is not None
        if report.failed == fails and data.get("verdict_shown") == row["verdict"]:
            continue
        was_failed = report.failed
        if terminal is not None:
            for reports in terminal.stats.values():
                for i, r in enumerate(reports):
                    if r is report:
                        del reports[i]
                        break
        data["verdict_shown"] = row["verdict"]
        if fails:
            report.outcome = "failed"
            report.longrepr = f"{type(exc).__name__}: {exc}"
        else:
            report.outcome = "passed"
            report.longrepr = None
        session.testsfailed += int(fails) - int(was_failed)
        if terminal is not None:
            category = config.hook.pytest_report_teststatus(report=report, config=config)[0]
            terminal.stats.setdefault(category, []).append(report)
        if lfplugin is not None and hasattr(lfplugin, "lastfailed"):
            if fails:
                lfplugin.lastfailed[report.nodeid] = True
            else:
                lfplugin.lastfailed.pop(report.nodeid, None)
        state.late_failures.append(dict(row, was_failed=was_failed, fails=fails))


def _junit_late_properties(state: _State) -> None:
    """Add corrected p-values and final verdicts to the (already finalised) JUnit testcases, and move a
    testcase between failure and pass where the final verdict moved its outcome (``_settle_outcomes``)."""
    if not state.junit_reporters:
        return
    import xml.etree.ElementTree as ET

    moved = {r["claim_id"]: r for r in state.late_failures if r["was_failed"] != r["fails"]}
    xml = _junit(state.config) if state.config is not None else None
    stats = getattr(xml, "stats", None) if xml is not None else None
    for row in state.rows:
        reporter = state.junit_reporters.get(row["claim_id"])
        if reporter is None:
            continue
        try:
            testcase = reporter.to_xml()
        except Exception:  # noqa: BLE001
            continue
        if not isinstance(testcase, ET.Element):
            continue
        props = testcase.find("properties")
        if props is None:
            props = ET.Element("properties")
            testcase.insert(0, props)
        for name, value in (
            ("emocheck_correction", row["correction"]),
            ("emocheck_family_declared", row["family_declared"]),
            ("emocheck_p_adjusted", f"{row['p_adjusted']:.6g}"),
            ("emocheck_p_min_effect_adjusted", f"{row['p_min_effect_adjusted']:.6g}"),
            ("emocheck_p_refute_adjusted", f"{row.get('p_refute_adjusted', float('nan')):.6g}"),
            ("emocheck_verdict", row["verdict"]),
            ("emocheck_n_decide_at_observed", row.get("n_decide_at_observed") or "-"),
            ("emocheck_n_refute_if_d0", row.get("n_refute_if_d0") or "-"),
            ("emocheck_fail_on", state.fail_on),
            ("emocheck_registration", row.get("registration", "-")),
            ("emocheck_registration_changes", row.get("registration_changes", "-")),
            ("emocheck_spec_hash", row.get("spec_hash", "-")),
        ):
            props.append(ET.Element("property", name=name, value=str(value)))
        change = moved.get(row["claim_id"])
        if change is None:
            continue
        failures = testcase.findall("failure")
        if change["fails"] and not failures:
            failure = ET.Element("failure", message=f"{row['verdict']} after {row['correction']} correction "
                                                    f"(fails on {state.fail_on})")
            failure.text = (f"p_adjusted={row['p_adjusted']:.6g}, "
                            f"p_min_effect_adjusted={row['p_min_effect_adjusted']:.6g}, "
                            f"p_refute_adjusted={row['p_refute_adjusted']:.6g}")
            testcase.append(failure)
            if isinstance(stats, dict):           # the <testsuite failures=...> count
                stats["failure"] = stats.get("failure", 0) + 1
                stats["passed"] = max(0, stats.get("passed", 0) - 1)
        elif not change["fails"] and failures:
            for failure in failures:
                testcase.remove(failure)
            if isinstance(stats, dict):
                stats["failure"] = max(0, stats.get("failure", 0) - 1)
                stats["passed"] = stats.get("passed", 0) + 1


def _terminal_summary(terminalreporter, state: _State) -> None:
    if state.is_worker:
        return
    if state.preflight_error is not None or not state.paths:
        for note in state.notes:
            terminalreporter.write_line(f"emocheck: {note}", red=True)
        if not state.rows:
            return
    if not state.rows or not state.paths:
        return
    from emocheck.plugin import report as rep

    tr = terminalreporter
    tr.section("emocheck: claims")
    if state.baseline_comparison is not None:       # the changes against the baseline come first
        cmp = state.baseline_comparison
        tr.write_line(f"against the baseline {state.baseline_path}: {cmp.summary()}", red=cmp.regressed)
        if cmp.changes:
            tr.write_line(cmp.table())
        tr.write_line("")
    tr.write_line(
        f"profile {state.profile.name} | models {', '.join(state.profile.models)} | correction "
        f"{state.correction} within declared families | alpha {state.alpha:g} (unless a claim sets its own) "
        f"| CI {state.ci_method}"
    )
    tr.write_line(rep.format_table(state.rows))
    tr.write_line(
        "d = Cohen's d (d_z when paired; directions: vs one random direction; null: in null SDs); raw CI at "
        "1-2*alpha for one-sided claims (its relevant end is the one-sided 1-alpha bound), 1-alpha for "
        "two-sided; adj. bounds: lower / upper bound of the effect in the claimed direction at the level the "
        "correction used (supported: the lower clears min_d; refuted: the upper lies below min_d); p corr / "
        "p(d>min_d) corr / p(d<min_d) corr: corrected within the declared family; d80 at a/m: smallest true d "
        "with 80% power under the rule at alpha/m; n for d: n (pairs or per group) for 80% power; n to decide: "
        "for an inconclusive claim, the n with 80% power to decide it at the observed d / to refute it if d = 0"
    )
    tr.write_line("")
    tr.write_line("families (declared in the hypothesis modules / run in this session; missing members count as p = 1):")
    tr.write_line(rep.format_families(state.families))
    from emocheck.plugin.register_hooks import registration_summary_lines

    for line, red in registration_summary_lines(state):
        tr.write_line(line, red=red)
    changed = rep.changed_by_correction(state.rows)
    if changed:
        tr.write_line("")
        for row in changed:
            tr.write_line(
                f"{row['verdict'].upper()} after {state.correction} correction ({row['verdict_uncorrected']} "
                f"before): {row['claim_id']} (p {rep.fmt_p(row['p_value'])} -> {rep.fmt_p(row['p_adjusted'])}, "
                f"p(d>min_d) {rep.fmt_p(row['p_min_effect'])} -> {rep.fmt_p(row['p_min_effect_adjusted'])}, "
                f"p(d<min_d) {rep.fmt_p(row['p_refute'])} -> {rep.fmt_p(row['p_refute_adjusted'])})",
                red=row["verdict_uncorrected"] == "supported",
            )
    tr.write_line("")
    tr.write_line(f"{rep.verdict_tally(state.rows)}; the run fails on: {state.fail_on}"
                  + (f" against {state.baseline_path}" if state.baseline_path else "")
                  + f"; statistics in {state.paths['effect_sizes'].parent}")
    if state.mlflow_run:
        tr.write_line(f"MLflow run {state.mlflow_run} at {state.mlflow_uri}")
    from emocheck.plugin.timing_hooks import summary_lines

    for line in summary_lines(getattr(state, "phase_timing", None), state.times):
        tr.write_line(line)
    for note in state.notes:
        tr.write_line(f"emocheck: {note}", red=True)
