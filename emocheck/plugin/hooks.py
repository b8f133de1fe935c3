"""emocheck's pytest plugin: research claims in, effect sizes, corrected p-values and power out.

Registered through the ``pytest11`` entry point ``emocheck = "emocheck.plugin.hooks"`` (disable with
``-p no:emocheck``). Claims are written with :func:`emocheck.claim` (see ``emocheck.plugin.claims``)::

    @claim("the {emotion} direction separates {emotion} prompts from neutral ones",
           family="q1_separation", paired=False, alternative="greater", min_d=0.5)
    @pytest.mark.parametrize("emotion", ["gratitude", "anger", "apology"])
    def test_separates(model_name, emotion, evidence):
        evidence.record(treated=scores_emotion, control=scores_neutral, metrics={"auc": auc})

Options (command line, else ini, else default)
-------------------------------------------------
=========================  ========================  =================================================
option                     ini                       meaning
=========================  ========================  =================================================
--emocheck-profile NAME    emocheck_profile          profile (smoke/ci/full); else $EMOCHECK_PROFILE, else ci
--emocheck-models a,b      -                         replace the profile's model list
--emocheck-correction M    emocheck_correction       bonferroni | holm (default) | bh
--emocheck-alpha A         emocheck_alpha            session alpha (default 0.05); a claim may set its own
--emocheck-ci-method M     emocheck_ci_method        analytic (default) | bootstrap (BCa)
--emocheck-results DIR     emocheck_results          results root (default <rootdir>/results; else $EMOCHECK_RESULTS_DIR)
--emocheck-dataset PATH    emocheck_dataset          emotion prompts CSV/JSONL (else the profile's, $EMOCHECK_DATASET, data/)
--emocheck-generation-prompts PATH  emocheck_generation_prompts  phase-5 openings CSV/JSONL
-                          emocheck_profiles         user profiles, one per line (also [tool.emocheck.profiles.*])
--emocheck-mlflow          emocheck_mlflow           log the session to MLflow (pip install 'emocheck[mlflow]')
--emocheck-mlflow-uri URI  emocheck_mlflow_uri       tracking URI (default file:./mlruns)
--emocheck-preregister     -                         write the claims' spec hashes to the lock; run no claim
--emocheck-preregister-force -                       ... even though results exist (recorded as forced)
--emocheck-preregistration emocheck_preregistration  the lock file (default <rootdir>/preregistration.json)
--emocheck-fail-on P       emocheck_fail_on          refuted (default) | inconclusive | changed (default with a baseline)
--emocheck-baseline PATH   emocheck_baseline         earlier session.json (or the lock with expected verdicts)
=========================  ========================  =================================================

``pytest_configure`` exports the resolved results root and profile name as
``EMOCHECK_RESULTS_DIR`` / ``EMOCHECK_PROFILE`` so library code (``profiles.results_dir``) writes to
the same place; xdist workers get the results root through ``workerinput`` as well (they also
inherit the environment). Fixtures that need the model list should use the session fixture
``emocheck_profile`` (it includes ``--emocheck-models``).

Models and xdist
----------------
A test that takes ``model_name`` and does not parametrize it itself is parametrized over the active
profile's models, with the model name as the id, so ``pytest hypotheses/ -k gemma`` selects the
``gemma3-270m`` claims. Each such test carries ``pytest.mark.xdist_group(name=<model>)``: with
``pytest -n 2 --dist loadgroup`` every model is loaded by one worker only. ``--dist loadgroup`` may
stay in ``addopts`` (needs pytest-xdist installed): without ``-n`` it has no effect. xdist appends
``@<model>`` to node ids under loadgroup; emocheck takes claim ids before that, so claim ids and
seeds are the same with or without xdist. (pytest-xdist 3.8 cannot add that suffix under
pytest >= 9.2, which makes loadgroup silently behave like ``load``; emocheck's worker-side shim
adds it, see ``_loadgroup_modifyitems``.)

Statistics flow and verdict
---------------------------
1. *Worker (the process that runs the test).* When a claim test returns, the plugin takes the
   evidence it recorded and calls ``emocheck.stats.compare`` with the claim's ``paired``,
   ``alternative``, ``min_d`` and alpha, the session CI method, the profile's bootstrap resamples
   and a seed derived from the claim id (``storage.stable_hash`` of the node id and the profile
   seed; never Python's ``hash()``). The per-claim result -- settings, formatted statement, family
   and its declared size, model and parameters, ``Comparison.to_dict()``, metrics and the
   per-sample values -- travels on the test report as plain builtins (``report.emocheck``).
   The test reports the claim's verdict before correction: supported passes (provisionally),
   refuted FAILS with d, its CI and the three p-values in the message, inconclusive is an outcome of
   its own (INCONCLUSIVE, letter ``i``; correction only raises p-values, so this one is final), under
   the default ``--emocheck-fail-on refuted``. A claim test that records no evidence, records twice, records too few
   or non-finite samples (EvidenceError) is reported as an ERROR with the reason; so is a test
   that uses ``evidence`` without ``@claim``.
2. *Families are declared, not selected.* The correction family of a claim is every claim with the
   same ``family=`` in its module, for every model of the active profile, counted at collection
   before ``-k``/``-m``/``--deselect`` remove anything, including tests a ``file.py::test_x``
   selection did not ask for. A family must live in one module (otherwise: usage error). Members
   that do not run in this session (deselected, skipped, errored) enter the correction as p = 1,
   so running a subset never makes a claim easier to pass.
3. *Controller (after all workers finish).* Claims are ordered by claim id and, per family, both
   ``p_value`` and ``p_min_effect`` are adjusted with the session method (``holm`` default;
   Bonferroni, Holm and BH are all computed for the CSV) with ``n_tests`` = declared family size.
   ``p_refute`` (the effect is smaller than min_d) is adjusted the same way. ``stats.verdict`` then says
   "supported" iff the corrected p and p(d>min_d) are below alpha, "refuted" iff the corrected
   p(d<min_d) is, "inconclusive" otherwise. Each claim's test is then given the outcome of its final
   verdict under ``--emocheck-fail-on`` (refuted: refuted claims fail; inconclusive: everything not
   supported fails; changed: only regressions against ``--emocheck-baseline``): a claim the correction
   moved (supported or refuted before, inconclusive after) is re-filed in the terminal stats, the
   exit status (``session.testsfailed``), the ``--lf`` cache and JUnit, and listed as "<VERDICT> after
   <method> correction". Numbers and outcomes are identical with no xdist, ``-n 1`` or
   ``-n 2``.
4. *Report.* The terminal summary prints one row per claim (id, model, statement, n, d [CI], raw
   p, corrected p, corrected p(d>min_d), the multiplicity-adjusted bound that decided it, planning
   power of the rule at alpha / m: the detectable d and the n needed for d = min_d + 0.2/0.3/0.5,
   verdict with its sign for two-sided claims and the reason when not supported, and for an
   inconclusive claim the n that would decide it),
   the correction, alpha and the family sizes (declared / run).
5. *Files* (``results/<profile>/statistics/``, written atomically, describing exactly this session:
   claims not run in this session are not kept): ``effect_sizes.csv``, ``power_analysis.csv``,
   ``power_analysis.json``, ``samples/<claim>.csv``, ``report.md``, ``forest_plot.png``,
   ``session.json``. ``report.md`` is appended to ``$GITHUB_STEP_SUMMARY`` when that is set.
6. *JUnit XML.* Each claim's testcase carries properties ``emocheck_family``, ``emocheck_d``,
   ``emocheck_d_ci``, ``emocheck_p_raw``, ``emocheck_p_min_effect_raw``,
   ``emocheck_p_refute_raw``, ``emocheck_verdict_uncorrected`` and, added after correction,
   ``emocheck_correction``, ``emocheck_p_adjusted``, ``emocheck_p_min_effect_adjusted``,
   ``emocheck_p_refute_adjusted``, ``emocheck_verdict``, ``emocheck_n_decide_at_observed``,
   ``emocheck_n_refute_if_d0``, ``emocheck_fail_on``; a claim whose outcome the correction changed
   gets (or loses) its ``<failure>`` element.
7. *MLflow* (``--emocheck-mlflow``): one run per session, see ``emocheck.tracking``. MLflow >= 3
   keeps the ``file:`` store in maintenance mode and refuses it unless MLFLOW_ALLOW_FILE_STORE=true;
   emocheck sets that for its own ``file:`` URI only. A logging failure is printed in red in the
   summary and does not change the verdicts.
"""
from __future__ import annotations

from emocheck.plugin.state import (  # noqa: F401 (pytest finds hooks and fixtures by name here)
    CORRECTIONS,
    CI_METHODS,
    ENV_RESULTS,
    ENV_PROFILE,
    WORKERINPUT_RESULTS,
    ClaimNotSupported,
    _State,
    STATE_KEY,
    EVIDENCE_KEY,
    CLAIM_ID_KEY,
    _state,
)
from emocheck.plugin.options import (  # noqa: F401 (pytest finds hooks and fixtures by name here)
    pytest_addoption,
    _resolve,
    _register_user_profiles,
    _resolve_data_files,
    pytest_configure,
    pytest_unconfigure,
    pytest_configure_node,
    pytest_report_header,
)
from emocheck.plugin.collection import (  # noqa: F401 (pytest finds hooks and fixtures by name here)
    emocheck_profile,
    evidence,
    _parametrizes,
    pytest_generate_tests,
    _module_id,
    _note_children,
    pytest_make_collect_report,
    pytest_collection_modifyitems,
    MODEL_FIXTURES,
    DATA_FIXTURES,
    _preflight,
    PREFLIGHT_KEY,
    pytest_runtest_setup,
    _short_error,
    _loadgroup_modifyitems,
    _LoadgroupShim,
)
from emocheck.plugin.judging import (  # noqa: F401 (pytest finds hooks and fixtures by name here)
    _plain,
    _claim_id,
    _seed,
    _base_result,
    _registration_spec,
    _fmt,
    _direction,
    _verdict_message,
    _PENDING,
    _raise_claim_error,
    judge_evidence,
    _judge,
    pytest_runtest_makereport,
    pytest_report_teststatus,
)
from emocheck.plugin.controller import (  # noqa: F401 (pytest finds hooks and fixtures by name here)
    _SessionPlugin,
    _junit,
    _finish,
    _junit_late_properties,
    _terminal_summary,
)
