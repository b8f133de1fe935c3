"""Optional MLflow logging of an emocheck session (``pytest --emocheck-mlflow``).

One MLflow run per pytest session, in experiment ``emocheck`` (or ``$EMOCHECK_MLFLOW_EXPERIMENT``):

* params: profile, models, correction, alpha, CI method, bootstrap resamples, number of claims;
* metrics, per claim ``<claim>/d``, ``/d_ci_low``, ``/d_ci_high``, ``/p_raw``, ``/p_adjusted``,
  ``/p_min_effect_adjusted``, ``/p_refute_adjusted``, ``/detectable_d_80``, ``/supported``, ``/refuted``,
  ``/inconclusive`` (1/0) and numeric ``/metric_<name>``; per session ``claims_<verdict>``;
  keys are sanitised to MLflow's alphabet (letters, digits, ``_ - . / space``) and shortened with a
  hash suffix when too long; tags map each claim key back to its full claim id;
* artifacts: every file in ``results/<profile>/statistics/`` (CSV, JSON, report.md, forest plot,
  samples/).

mlflow is an optional extra: ``pip install 'emocheck[mlflow]'``. The client is created for the
given tracking URI (default ``file:./mlruns``) without touching mlflow's global tracking state.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
from pathlib import Path
from typing import Iterable

from emocheck.errors import ConfigError
from emocheck.storage import stable_hash

MAX_KEY = 200


def require_mlflow():
    """Import mlflow or raise ConfigError saying how to install it."""
    try:
        import mlflow  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"--emocheck-mlflow needs mlflow, which is not importable here ({exc}); "
            "install it with: pip install 'emocheck[mlflow]'"
        ) from None
    return mlflow


def sanitize_key(key: str, max_len: int = MAX_KEY) -> str:
    """An MLflow-safe metric/param key (letters, digits, '_', '-', '.', '/', ' ')."""
    clean = re.sub(r"[^A-Za-z0-9_\-./ ]+", "_", key).strip("/ ") or "key"
    clean = re.sub(r"/{2,}", "/", clean)
    clean = clean.replace("..", "_")  # mlflow rejects path traversal-like keys
    if len(clean) > max_len:
        clean = f"{clean[: max_len - 9]}_{stable_hash(key, 8)}"
    return clean


def claim_key(claim_id: str) -> str:
    """Metric prefix for a claim: its short id, sanitised, unique through a hash suffix."""
    short = claim_id.split("/")[-1].replace(".py::", "::").replace("::", ".")
    return sanitize_key(f"{short}-{stable_hash(claim_id, 6)}", max_len=MAX_KEY - 40)


def _finite(x) -> float | None:
    if isinstance(x, (str, bytes)) or x is None:
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _files(paths: dict) -> Iterable[tuple[Path, str | None]]:
    for name, path in paths.items():
        path = Path(path)
        if path.is_dir():
            yield path, path.name
        elif path.is_file():
            yield path, None


def log_session(tracking_uri: str, settings: dict, rows: list[dict], paths: dict,
                experiment: str | None = None) -> str:
    """Log one run for the session; returns the MLflow run id."""
    require_mlflow()
    from mlflow.tracking import MlflowClient

    with _file_store_allowed(tracking_uri):
        return _log(MlflowClient(tracking_uri=tracking_uri), settings, rows, paths, experiment)


@contextlib.contextmanager
def _file_store_allowed(tracking_uri: str):
    """MLflow >= 3.x refuses the ``file:`` store unless MLFLOW_ALLOW_FILE_STORE=true; allow it here.

    ``file:./mlruns`` is emocheck's documented default (no server, no database); pass a
    ``sqlite:///...`` or ``http://...`` URI to use another backend.
    """
    is_file = tracking_uri.startswith("file:") or "://" not in tracking_uri
    if not is_file or os.environ.get("MLFLOW_ALLOW_FILE_STORE") is not None:
        yield
        return
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)


def _log(client, settings: dict, rows: list[dict], paths: dict, experiment: str | None) -> str:
    import time

    from mlflow.entities import Metric, Param, RunTag

    name = experiment or os.environ.get("EMOCHECK_MLFLOW_EXPERIMENT") or "emocheck"
    exp = client.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(name)
    run = client.create_run(exp_id, run_name=f"emocheck-{settings.get('profile', '')}",
                            tags={"emocheck.profile": str(settings.get("profile", ""))})
    run_id = run.info.run_id
    status = "FINISHED"
    try:
        params = {
            "profile": settings.get("profile"),
            "models": ",".join(settings.get("models", [])),
            "correction": settings.get("correction"),
            "alpha": settings.get("alpha"),
            "ci_method": settings.get("ci_method"),
            "bootstrap_resamples": settings.get("bootstrap_resamples"),
            "n_claims": len(rows),
        }
        now = int(time.time() * 1000)
        metrics: list = []
        tags: list = []
        counts = {"supported": 0, "refuted": 0, "inconclusive": 0}
        for row in rows:
            prefix = claim_key(row["claim_id"])
            tags.append(RunTag(sanitize_key(f"claim.{prefix}"), str(row["claim_id"])[:5000]))
            tags.append(RunTag(sanitize_key(f"verdict.{prefix}"), str(row.get("verdict"))))
            values = {
                "d": row.get("d"), "d_ci_low": row.get("d_ci_low"), "d_ci_high": row.get("d_ci_high"),
                "p_raw": row.get("p_value"), "p_min_effect_raw": row.get("p_min_effect"),
                "p_adjusted": row.get("p_adjusted"), "p_min_effect_adjusted": row.get("p_min_effect_adjusted"),
                "p_refute_adjusted": row.get("p_refute_adjusted"),
                "detectable_d_80": row.get("detectable_d_80"),
            }
            for verdict in counts:
                values[verdict] = 1.0 if row.get("verdict") == verdict else 0.0
                counts[verdict] += row.get("verdict") == verdict
            for key, value in row.items():
                if key.startswith("metric_") and not isinstance(value, bool):
                    values[key] = value
            for key, value in values.items():
                v = _finite(value)
                if v is not None:
                    metrics.append(Metric(sanitize_key(f"{prefix}/{key}"), v, now, 0))
        for verdict, count in counts.items():
            metrics.append(Metric(f"claims_{verdict}", float(count), now, 0))
        metrics.append(Metric("claims_total", float(len(rows)), now, 0))
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        for i in range(0, len(tags), 90):  # log_batch accepts at most 100 tags
            client.log_batch(run_id, tags=tags[i: i + 90])
        for i in range(0, len(metrics), 900):  # log_batch accepts at most 1000 metrics
            client.log_batch(run_id, metrics=metrics[i: i + 900])
        for path, artifact_path in _files(paths):
            if artifact_path:
                client.log_artifacts(run_id, str(path), artifact_path=artifact_path)
            else:
                client.log_artifact(run_id, str(path))
    except BaseException:
        status = "FAILED"
        raise
    finally:
        client.set_terminated(run_id, status=status)
    return run_id
