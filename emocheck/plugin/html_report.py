"""``report.html``: one self-contained page (no network, no external files needed) for reading a session.

A claims table that sorts (click a column header) and filters (model, family, verdict,
registration status, free text; also from the URL: ``report.html#model=gemma3-270m&verdict=supported``;
each row's left edge and verdict cell are coloured by verdict: green supported, red refuted, orange inconclusive,
``#sort=d&dir=desc`` sorts by effect size, largest first (column keys: COLUMN_KEYS, or a column number), ``#open=<claim id>`` opens a claim);
clicking a claim opens its statement and research question, registration status with the changed
fields, for a claim about generated text its example continuations (treated and control on the same
prompts, chosen by the rule the claim states; ``emocheck.patching.examples``), the per-sample
distribution of treated and control as a small inline SVG, its controls and fluency metrics, every
metric, its spec (long parts several claims share are listed once at the end of the page), and links
to its samples and examples files. Families are grouped under the research question they answer
(``emocheck.plugin.questions``; also a filter). The per-family forest plots are embedded as data URIs
(32-colour PNGs). The page keeps the number of visible claims in ``#visible-count`` and ``body[data-visible]``
(what the headless-browser test reads).
"""
from __future__ import annotations

import base64
import html
import json
import math
import random
from pathlib import Path

from emocheck.plugin.questions import by_question, question_of
from emocheck.storage import atomic_write_text

FLUENCY_WORDS = ("fluen", "perplex", "ppl", "repeti", "distinct", "entropy", "coheren")
CONTROL_WORDS = ("control", "random", "null", "permut", "baseline")

__all__ = ["render_html", "write_html", "samples_svg"]


def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _f(x, digits: int = 3) -> str:
    v = _num(x)
    if math.isnan(v):
        return "-"
    if v != 0 and abs(v) < 10 ** -digits:
        return f"{v:.1e}"
    return f"{v:.{digits}g}"


def _e(x) -> str:
    return html.escape("-" if x is None or x == "" else str(x), quote=True)


def _text(x: str) -> str:
    """Escaped for element content (quotes need no escaping there: a spec's JSON stays readable and small)."""
    return html.escape(x, quote=False)


MAX_POINTS = 150


def samples_svg(treated: list[float], control: list[float], width: int = 360, height: int = 90, seed: int = 0,
                labels: tuple[str, str] = ("treated", "control")) -> str:
    """Two jittered strips (treated above control) with each mean marked; plain inline SVG. A strip of
    more than MAX_POINTS values draws an evenly spaced subset of the sorted values (its quantiles), so
    the page stays small; the count shown and the mean line use every value."""
    values = [v for v in list(treated) + list(control) if math.isfinite(v)]
    if not values:
        return "<svg class='dist' width='1' height='1'></svg>"
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    left, right = 62, width - 10

    def x(v: float) -> float:
        return left + (v - lo) / span * (right - left)

    rng = random.Random(seed)
    parts = [f"<svg class='dist' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             f"viewBox='0 0 {width} {height}' role='img'>"]
    for name, vals, y0, colour in ((labels[0], treated, 22, "#d95f02"), (labels[1], control, 58, "#1b9e77")):
        finite = [v for v in vals if math.isfinite(v)]
        parts.append(f"<text x='2' y='{y0 + 4}' font-size='11'>{name} ({len(finite)})</text>")
        drawn = sorted(finite)
        if len(drawn) > MAX_POINTS:
            drawn = [drawn[round(i * (len(drawn) - 1) / (MAX_POINTS - 1))] for i in range(MAX_POINTS)]
        if drawn:
            # One path of zero-length round-capped segments, one dot per value: about 12 bytes a point
            # where a <circle> element took 70 (at ci the strips were about half of the page).
            dots = "".join(f"M{x(v):.0f} {y0 + rng.uniform(-8, 8):.0f}h0" for v in drawn)
            parts.append(f"<path class='dots' d='{dots}' stroke='{colour}' stroke-opacity='0.55' stroke-width='4' "
                         "stroke-linecap='round' fill='none'/>")
        if finite:
            m = sum(finite) / len(finite)
            parts.append(f"<line x1='{x(m):.1f}' x2='{x(m):.1f}' y1='{y0 - 12}' y2='{y0 + 12}' "
                         f"stroke='black' stroke-width='2'/>")
    parts.append(f"<text x='{left}' y='{height - 2}' font-size='10'>{lo:.3g}</text>")
    parts.append(f"<text x='{right}' y='{height - 2}' font-size='10' text-anchor='end'>{hi:.3g}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _distribution(result: dict | None) -> tuple[list[float], list[float], tuple[str, str, str]]:
    """The two strips to draw for a claim's evidence kind (samples, directions, vs_null)."""
    samples = (result or {}).get("samples") or {}
    kind = (result or {}).get("kind") or "samples"
    if kind == "vs_null":
        return ([_num(samples.get("observed"))], [_num(v) for v in samples.get("null") or []],
                ("observed", "null draws", "observed statistic vs its null distribution"))
    treated = [_num(v) for v in samples.get("treated") or []]
    control = samples.get("control") or []
    if kind == "directions":  # [n_prompts][K] with None where a direction was not run
        flat = [_num(v) for row in control for v in (row if isinstance(row, list) else [row]) if v is not None]
        return treated, flat, ("treated", "controls", "per prompt: treated direction vs every control direction")
    return treated, [_num(v) for v in control], ("treated", "control", "treated vs control, per sample")


def _metrics(row: dict, words: tuple[str, ...]) -> list[tuple[str, object]]:
    return [(k[len("metric_"):], v) for k, v in sorted(row.items())
            if k.startswith("metric_") and any(w in k.lower() for w in words)]


def _kv_table(pairs) -> str:
    if not pairs:
        return "<p class='none'>none recorded</p>"
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_f(v) if isinstance(v, float) else v)}</td></tr>" for k, v in pairs)
    return f"<table class='kv'>{body}</table>"


def _score_line(side: dict, column: str) -> str:
    parts = [f"{_e(column)} {_e(_f(side.get('score')))}"]
    for key, label in (("nll", "NLL/token"), ("rep3", "rep3")):
        if key in side and key != column:
            parts.append(f"{label} {_e(_f(side.get(key)))}")
    if "draw" in side:
        parts.append(f"draw {_e(side['draw'])}")
    return "<div class='sc'>" + " &middot; ".join(parts) + "</div>"


def _continuation(side: dict, column: str) -> str:
    prefix = f"<span class='pre'>[{_e(side['prefix'])}]</span> " if side.get("prefix") else ""
    text = side.get("text")
    shown = _e(text) if text else "<span class='none'>(empty continuation)</span>"
    return f"<td>{prefix}{shown}{_score_line(side, column)}</td>"


def examples_html(examples: dict | None) -> str:
    """The claim's example continuations side by side (treated | control, one prompt a row) with the
    rule that chose them; empty when the claim recorded none."""
    if not examples or not examples.get("rows"):
        return ""
    column = str(examples.get("column") or "score")
    n = examples.get("n_judged")
    body = []
    for ex in examples["rows"]:
        where = (f"{_e(_f(ex.get('percentile')))}th percentile<br>rank {_e(ex.get('rank'))} of {_e(n)}"
                 if ex.get("percentile") is not None else _e(ex.get("label", "")))
        body.append(
            f"<tr><td class='where'>{where}<br>difference {_e(_f(ex.get('difference')))}</td>"
            f"<td class='prompt'>{_e(ex.get('prompt'))}<div class='sc'>prompt {_e(ex.get('sample_id'))}</div></td>"
            f"{_continuation(ex.get('treated') or {}, column)}{_continuation(ex.get('control') or {}, column)}</tr>")
    treated = _e((examples.get("treated") or "treated"))
    control = _e((examples.get("control") or "control"))
    return (f"<div class='examples'><h4>Example continuations: treated and control on the same prompt</h4>"
            f"<p class='rule'>Chosen by a fixed rule, not by hand: {_e(examples.get('rule'))}.</p>"
            f"<table class='ex'><tr><th></th><th>prompt</th><th>treated: <code>{treated}</code></th>"
            f"<th>control: <code>{control}</code></th></tr>{''.join(body)}</table></div>")


#: a spec value (code hashes, data hashes, profile) longer than this that several claims share is listed once
SHARED_MIN_CHARS = 200


def _spec_of(result: dict | None, registration: dict | None):
    return (registration or {}).get("spec") or ((result or {}).get("registration_spec") or {}).get("spec")


def _part_json(value) -> str:
    return json.dumps(value, indent=1, sort_keys=True)


def shared_spec_parts(specs) -> dict[str, tuple[str, str]]:
    """{part JSON: (part id, its key)} for every long top-level spec value that two or more claims share
    (most of a spec is the hashes of the code and data a claim uses, the same for a whole module)."""
    counts: dict[str, list] = {}
    for spec in specs:
        for key, value in sorted((spec or {}).items()):
            text = _part_json(value)
            if len(text) > SHARED_MIN_CHARS:
                counts.setdefault(text, [key, 0])[1] += 1
    shared = [(text, key) for text, (key, n) in counts.items() if n > 1]
    return {text: (f"S{i + 1}", key) for i, (text, key) in enumerate(shared)}


def _spec_html(spec, shared: dict[str, tuple[str, str]]) -> str:
    if not spec:
        return "<pre>-</pre>"
    shown, links = {}, []
    for key, value in spec.items():
        ref = shared.get(_part_json(value))
        if ref:
            size = len(value) if isinstance(value, (dict, list)) else 1
            shown[key] = f"shared part {ref[0]} ({size} entries; listed once under 'Spec parts shared by several claims')"
            links.append(f"<a href='#spec-{ref[0]}'>{ref[0]} ({_e(key)})</a>")
        else:
            shown[key] = value
    link_line = f"<p>shared parts: {', '.join(links)}</p>" if links else ""
    return f"<pre>{_text(json.dumps(shown, indent=1, sort_keys=True))}</pre>{link_line}"


def _shared_parts_section(shared: dict[str, tuple[str, str]]) -> str:
    if not shared:
        return ""
    body = "".join(f"<details id='spec-{pid}'><summary>{pid}: <code>{_e(key)}</code></summary><pre>{_text(text)}</pre></details>"
                   for text, (pid, key) in shared.items())
    return ("<h2>Spec parts shared by several claims</h2><p>Parts of the claims' specs (what each spec hash covers) "
            f"that several claims have in common, listed once.</p>{body}")


def _detail(row: dict, result: dict | None, registration: dict | None, figure_href: str | None,
            shared: dict[str, tuple[str, str]] | None = None) -> str:
    tr, co, labels = _distribution(result)
    reg = registration or {}
    changes = reg.get("changes") or []
    change_rows = "".join(
        f"<tr><td><code>{_e(c.get('field'))}</code></td><td>{_e(json.dumps(c.get('from')))}</td>"
        f"<td>{_e(json.dumps(c.get('to')))}</td></tr>" for c in changes)
    change_table = (f"<table class='kv'><tr><th>field</th><th>registered</th><th>now</th></tr>{change_rows}</table>"
                    if changes else "")
    spec = _spec_of(result, registration)
    fluency = _metrics(row, FLUENCY_WORDS)
    controls = _metrics(row, CONTROL_WORDS)
    control_summary = [("n control", row.get("n_control")), ("mean control", row.get("mean_control")),
                       ("mean treated", row.get("mean_treated"))]
    others = [(k[len("metric_"):], v) for k, v in sorted(row.items()) if k.startswith("metric_")]
    link = (f"<a href='{_e(row.get('samples_file'))}'>{_e(row.get('samples_file'))}</a>"
            if row.get("samples_file") else "no samples file")
    fig = f" &middot; <a href='#{_e(figure_href)}'>family forest plot</a>" if figure_href else ""
    question = question_of(row.get("family"))
    ex_link = (f" &middot; <b>examples</b> <a href='{_e(row.get('examples_file'))}'>{_e(row.get('examples_file'))}</a>"
               if row.get("examples_file") else "")
    return (
        f"<div class='detail-body'><p class='statement'>{_e(row.get('statement'))}</p>"
        f"<p class='question'>{_e(question.key)}: {_e(question.title)}</p>"
        f"<p><b>claim id</b> <code>{_e(row.get('claim_id'))}</code> &middot; <b>samples</b> {link}{ex_link}{fig}</p>"
        f"<p><b>registration</b>: <span class='reg'>{_e(reg.get('status', row.get('registration')))}</span>"
        f" (spec {_e((row.get('spec_hash') or '-')[:12])}, registered {_e((row.get('registered_hash') or '-')[:12])})"
        f"</p>{change_table}"
        f"{examples_html((result or {}).get('examples'))}"
        f"<div class='cols'><div><h4>{_e(labels[2])}</h4>{samples_svg(tr, co, labels=labels[:2])}</div>"
        f"<div><h4>verdict</h4>{_kv_table([('d [CI]', row.get('d_ci')), ('p raw', row.get('p_value')), ('p corrected', row.get('p_adjusted')), ('p(d>min_d) corrected', row.get('p_min_effect_adjusted')), ('p(d<min_d) corrected', row.get('p_refute_adjusted')), ('n to decide (observed d / d = 0)', decision_n_cell(row)), ('min_d', row.get('min_d')), ('alternative', row.get('alternative')), ('paired', row.get('paired')), ('power', row.get('power'))])}</div>"
        f"<div><h4>controls</h4>{_kv_table(control_summary + controls)}</div>"
        f"<div><h4>fluency</h4>{_kv_table(fluency)}</div></div>"
        f"<details><summary>all metrics</summary>{_kv_table(others)}</details>"
        f"<details><summary>spec (what the hash covers)</summary>{_spec_html(spec, shared or {})}</details>"
        "</div>"
    )


# The verdict comes right after the model: on a laptop screen the table's right end is off-screen.
COLUMNS = [("claim", "text"), ("model", "text"), ("verdict", "text"), ("family", "text"), ("statement", "text"),
           ("n", "num"), ("d [CI]", "num"), ("p corr", "num"), ("p(d>min_d) corr", "num"),
           ("registration", "text")]
# names for links (#sort=d&dir=desc), so a link survives a change of column order
COLUMN_KEYS = ["claim", "model", "verdict", "family", "statement", "n", "d", "p", "p_min_effect", "registration"]
VERDICT_COL = 2
REGISTRATION_COL = 9

SCRIPT = r"""
(function(){
  const rows = Array.from(document.querySelectorAll('tr.claim'));
  const sel = {question: document.getElementById('f-question'),
               model: document.getElementById('f-model'), family: document.getElementById('f-family'),
               verdict: document.getElementById('f-verdict'), registration: document.getElementById('f-registration')};
  const text = document.getElementById('f-text');
  function apply(){
    let n = 0; const q = text.value.toLowerCase();
    rows.forEach(r => {
      let ok = Object.keys(sel).every(k => !sel[k].value || r.dataset[k] === sel[k].value);
      if (ok && q) ok = r.textContent.toLowerCase().includes(q);
      r.hidden = !ok; const d = document.getElementById(r.dataset.detail);
      if (!ok && d) d.hidden = true;
      if (ok) n++;
    });
    document.getElementById('visible-count').textContent = String(n);
    document.body.setAttribute('data-visible', String(n));
  }
  Object.values(sel).forEach(s => s.addEventListener('change', apply));
  text.addEventListener('input', apply);
  rows.forEach(r => r.addEventListener('click', () => {
    const d = document.getElementById(r.dataset.detail); if (d) d.hidden = !d.hidden; }));
  document.querySelectorAll('th[data-col]').forEach(th => th.addEventListener('click', () => {
    const col = Number(th.dataset.col), num = th.dataset.kind === 'num';
    const dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
    const tbody = document.querySelector('#claims tbody');
    const key = r => { const c = r.children[col]; const v = c.dataset.sort !== undefined ? c.dataset.sort : c.textContent;
                       return num ? (v === '' || isNaN(Number(v)) ? Infinity : Number(v)) : v.toLowerCase(); };
    rows.slice().sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * dir).forEach(r => {
      tbody.appendChild(r); const d = document.getElementById(r.dataset.detail); if (d) tbody.appendChild(d); });
  }));
  const params = new URLSearchParams(location.hash.slice(1));
  params.forEach((v, k) => { if (sel[k]) sel[k].value = v; if (k === 'text') text.value = v; if (k === 'open') {
    const r = rows.find(x => x.dataset.claim === v); if (r) document.getElementById(r.dataset.detail).hidden = false; } });
  if (params.has('sort')) {  // e.g. #sort=d&dir=desc: sort by effect size, largest first (or a column number)
    const key = params.get('sort');
    const th = document.querySelector('th[data-key="' + key + '"]') || document.querySelector('th[data-col="' + key + '"]');
    if (th) { th.click(); if (params.get('dir') === 'desc') th.click(); } }
  apply();
})();
"""

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.2em;color:#222}
table#claims{border-collapse:collapse;width:100%;font-size:13px}
#claims th,#claims td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
#claims th{background:#f3f3f3;cursor:pointer;position:sticky;top:0}
#claims td:first-child{min-width:15em;max-width:22em;word-break:break-all;font-size:11px;color:#555}
#claims td:nth-child(5){min-width:22em}
tr.claim{cursor:pointer} tr.claim:hover{background:#f7fbff}
.v-supported{color:#1a7f37;font-weight:600} .v-refuted{color:#c62828;font-weight:600}
.v-inconclusive{color:#b35900;font-weight:600}
tr.claim[data-verdict=supported]{box-shadow:inset 4px 0 #1a9850} tr.claim[data-verdict=refuted]{box-shadow:inset 4px 0 #d73027}
tr.claim[data-verdict=inconclusive]{box-shadow:inset 4px 0 #fdae61}
.r-changed{color:#b35900;font-weight:600} .r-exploratory{color:#6a1b9a} .r-pre-registered{color:#1a7f37}
.filters{margin:0.8em 0;display:flex;gap:1em;flex-wrap:wrap;align-items:center}
.detail-body{background:#fafafa;padding:8px 12px} .cols{display:flex;gap:24px;flex-wrap:wrap}
table.kv{border-collapse:collapse;font-size:12px} table.kv th,table.kv td{padding:1px 8px 1px 0;text-align:left}
pre{max-height:22em;overflow:auto;background:#fff;border:1px solid #ddd;padding:6px;font-size:11px}
.banner{padding:6px 10px;border-radius:4px;background:#fff4e5;border:1px solid #f0c36d}
.none{color:#888;margin:0} img.forest{max-width:100%;border:1px solid #ddd;margin-bottom:1em}
tr.question th{background:#eef3f8;text-align:left;padding-top:6px} .plain{font-weight:normal;color:#555}
p.question{color:#555;margin:2px 0}
.examples{margin:6px 0 10px} p.rule{font-size:12px;color:#555;margin:2px 0 4px}
table.ex{border-collapse:collapse;font-size:12px;width:100%;table-layout:fixed}
table.ex th,table.ex td{border:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left;white-space:pre-wrap}
table.ex th:first-child,table.ex td:first-child{width:8em} table.ex td.prompt{width:22%}
.sc{color:#555;font-size:11px;margin-top:3px;white-space:normal} .pre{color:#6a1b9a}
"""


def decision_n_cell(row: dict) -> str:
    from emocheck.plugin.tally import decision_n_cell as cell

    return cell(row)
#: colours kept in an embedded forest plot: its lines, points, bands and anti-aliased text fit in 32
PNG_COLOURS = 32


def embedded_png(path) -> bytes:
    """The figure as embedded in the page: a 32-colour palette PNG (about a third of matplotlib's RGBA
    file, same pixels size; the file on disk stays as drawn). Falls back to the file's bytes."""
    import io

    data = Path(path).read_bytes()
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            small = im.convert("RGB").quantize(colors=PNG_COLOURS, method=Image.Quantize.FASTOCTREE)
            out = io.BytesIO()
            small.save(out, "PNG", optimize=True)
    except Exception:  # noqa: BLE001 - an image the palette step cannot read is embedded as it is
        return data
    return out.getvalue() if len(out.getvalue()) < len(data) else data


def _options(name: str, values) -> str:
    opts = "".join(f"<option value='{_e(v)}'>{_e(v)}</option>" for v in sorted(set(values)))
    return f"<label>{name} <select id='f-{name}'><option value=''>all</option>{opts}</select></label>"


def render_html(rows: list[dict], families: dict, settings: dict, *, results: list[dict] | None = None,
                registration: dict | None = None, figures: dict[str, Path] | None = None, validity=None) -> str:
    """The page as a string. ``registration``: {"lock": {...} | None, "claims": {claim_id: status}}."""
    by_id = {r["claim_id"]: r for r in (results or [])}
    reg = registration or {}
    reg_claims = reg.get("claims") or {}
    figures = figures or {}
    fig_index = {fam: j for j, fam in enumerate(sorted(figures))}
    shared = shared_spec_parts(_spec_of(by_id.get(r["claim_id"]), reg_claims.get(r["claim_id"])) for r in rows)
    body_rows = []
    for i, row in enumerate(rows):
        verdict = str(row.get("verdict") or "-")
        status = str(row.get("registration") or "-")
        d = _num(row.get("d"))
        d_ci = row.get("d_ci") or (f"{d:.2f} [{_num(row.get('d_ci_low')):.2f}, {_num(row.get('d_ci_high')):.2f}]"
                                   if not math.isnan(d) else "-")
        row = dict(row, d_ci=d_ci)
        n = f"{row.get('n_treated')}/{row.get('n_control')}" if row.get("n_treated") is not None else "-"
        fam_anchor = f"fig-{fig_index[row['family']]}" if row.get("family") in fig_index else None
        cells = [
            (row.get("short_id"), None), (row.get("model") or "-", None), (verdict, None), (row.get("family"), None),
            (row.get("statement"), None), (n, row.get("n_treated")), (d_ci, "" if math.isnan(d) else d),
            (_f(row.get("p_adjusted")), _num(row.get("p_adjusted"))),
            (_f(row.get("p_min_effect_adjusted")), _num(row.get("p_min_effect_adjusted"))),
            (row.get("registration_changes") or status, status),
        ]
        tds = ""
        for j, (value, sort_key) in enumerate(cells):
            attrs = ""
            if sort_key is not None:
                attrs += f" data-sort='{_e('' if isinstance(sort_key, float) and math.isnan(sort_key) else sort_key)}'"
            if j == VERDICT_COL:
                attrs += f" class='v-{_e(verdict.replace(' ', '-'))}'"
            if j == REGISTRATION_COL:
                attrs += f" class='r-{_e(status.split(' ')[0])}'"
            tds += f"<td{attrs}>{_e(value)}</td>"
        body_rows.append(
            f"<tr class='claim' id='c{i}' data-detail='d{i}' data-claim='{_e(row['claim_id'])}' "
            f"data-model='{_e(row.get('model') or '-')}' data-family='{_e(row.get('family'))}' "
            f"data-question='{_e(question_of(row.get('family')).key)}' "
            f"data-verdict='{_e(verdict)}' data-registration='{_e(status)}'>{tds}</tr>"
            f"<tr class='detail' id='d{i}' hidden><td colspan='{len(COLUMNS)}'>"
            f"{_detail(row, by_id.get(row['claim_id']), reg_claims.get(row['claim_id']), fam_anchor, shared)}</td></tr>")
    head = "".join(f"<th data-col='{j}' data-key='{COLUMN_KEYS[j]}' data-kind='{kind}'>{_e(name)}</th>"
                   for j, (name, kind) in enumerate(COLUMNS))
    from emocheck.plugin.tally import verdict_tally

    lock = reg.get("lock")
    if lock is None:
        banner = ("<p class='banner'>No pre-registration lock for this profile: every claim is exploratory. "
                  "Write one with <code>emocheck preregister</code> (or <code>pytest hypotheses/ --emocheck-preregister</code>) before running.</p>")
    else:
        forced = (f" It was written with --emocheck-preregister-force after {lock.get('n_results_seen')} result "
                  "files existed." if lock.get("forced") else "")
        counts = {}
        for r in rows:
            counts[r.get("registration") or "-"] = counts.get(r.get("registration") or "-", 0) + 1
        changed_fams = [f for f, v in (reg.get("families") or {}).items() if v.get("membership_changed")]
        banner = (f"<p class='banner'>Pre-registration lock {_e(lock.get('path'))} written "
                  f"{_e(lock.get('registered_utc'))}.{html.escape(forced)} "
                  + ", ".join(f"{_e(k)}: {v}" for k, v in sorted(counts.items()))
                  + (f". Families whose membership changed since the lock: {_e(', '.join(changed_fams))}"
                     if changed_fams else "") + "</p>")
    figs = "".join(
        f"<h3 id='fig-{j}'>{_e(fam)}</h3><img class='forest' alt='forest plot of {_e(fam)}' "
        f"src='data:image/png;base64,{base64.b64encode(embedded_png(path)).decode()}'>"
        for j, (fam, path) in enumerate(sorted(figures.items())) if Path(path).is_file())
    summary = _family_summary(rows)
    fam_rows = "".join(
        _question_row(q, 4) + "".join(
            f"<tr><td>{_e(name)}</td><td>{_e(families[name].get('declared'))}</td><td>{_e(families[name].get('run'))}</td>"
            f"<td>{'yes' if families[name].get('membership_changed') else 'no'}</td></tr>" for name in names)
        for q, names in by_question(families))
    settings_line = " | ".join(f"{_e(k)}: {_e(v)}" for k, v in settings.items())
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>emocheck report</title>"
        f"<style>{STYLE}</style></head><body data-visible='{len(rows)}'>"
        f"<h1>emocheck report: {_e(verdict_tally(rows))}</h1><p>{settings_line}</p>{banner}"
        + summary +
        "<div class='filters'>"
        + _options("question", [question_of(r.get("family")).key for r in rows])
        + _options("model", [r.get("model") or "-" for r in rows])
        + _options("family", [r.get("family") for r in rows])
        + _options("verdict", [str(r.get("verdict") or "-") for r in rows])
        + _options("registration", [str(r.get("registration") or "-") for r in rows])
        + "<label>text <input id='f-text' type='search'></label>"
        f"<span><b id='visible-count'>{len(rows)}</b> of {len(rows)} claims shown (click a claim for details; "
        "click a header to sort)</span></div>"
        f"<table id='claims'><thead><tr>{head}</tr></thead><tbody>{''.join(body_rows)}</tbody></table>"
        + _validity_section(validity) +
        "<h2>Families</h2><table class='kv'><tr><th>family</th><th>declared</th><th>run</th>"
        f"<th>membership changed since lock</th></tr>{fam_rows}</table>"
        f"<h2>Forest plots</h2>{figs or '<p class=none>nothing to plot</p>'}"
        + _shared_parts_section(shared) +
        f"<script>{SCRIPT}</script></body></html>"
    )


def _question_row(question, colspan: int) -> str:
    return (f"<tr class='question'><th colspan='{colspan}'>{_e(question.key)}: {_e(question.title)} "
            f"<span class='plain'>{_e(question.plain)}</span></th></tr>")


def _family_summary(rows: list[dict]) -> str:
    """Supported / judged per family and model (refuted beside), families under the research question
    they answer: the first thing a reader looks for."""
    models = sorted({str(r.get("model") or "-") for r in rows})
    cells: dict[str, dict[str, list[int]]] = {}
    for r in rows:
        c = cells.setdefault(str(r.get("family")), {}).setdefault(str(r.get("model") or "-"), [0, 0, 0])
        c[0] += r.get("verdict") == "supported"
        c[1] += 1
        c[2] += r.get("verdict") == "refuted"
    head = "".join(f"<th>{_e(m)}</th>" for m in models)

    def cell(c: list[int]) -> str:
        refuted = f" <span class='v-refuted'>({c[2]} refuted)</span>" if c[2] else ""
        return f"<td>{c[0]} / {c[1]}{refuted}</td>"

    body = "".join(
        _question_row(q, len(models) + 1) + "".join(
            f"<tr><td>{_e(fam)}</td>" + "".join(cell(cells[fam][m]) if m in cells[fam] else "<td>-</td>"
                                                for m in models) + "</tr>" for fam in fams)
        for q, fams in by_question(cells))
    return ("<details open><summary><b>Supported / judged, by research question, family and model (refuted "
            "beside; the rest inconclusive)</b></summary>"
            f"<table class='kv summary'><tr><th>family</th>{head}</tr>{body}</table></details>")


def _validity_section(validity) -> str:
    if validity is None:
        return ""
    from emocheck.evaluators.validity import validity_html

    return validity_html(validity)


def write_html(path: str | Path, rows: list[dict], families: dict, settings: dict, **kwargs) -> Path:
    path = Path(path)
    atomic_write_text(path, render_html(rows, families, settings, **kwargs))
    return path
