"""Time one circuit end to end (emocheck.circuits.experiment._compute) and its parts, without reading or
writing the circuit cache: `EMOCHECK_RESULTS_DIR=<results root with representations> python
benchmarks/bench_circuit_one.py smollm2-135m anger full`. Prints the total, the seconds per part
(mean activations, attribution, exact validation, discovery, set evaluation) and the circuit's size and
held-out numbers, to compare with an earlier run's circuit_<emotion>.json."""
import sys, time, tempfile, functools
import numpy as np
from emocheck.profiles import get_profile
from emocheck.study import study_for
import emocheck.circuits.experiment as E
from emocheck.models.registry import load_model
from emocheck.representations.build import build_representations
model, emo, prof = sys.argv[1], sys.argv[2], sys.argv[3]
profile = get_profile(prof)
T = {}
def wrap(mod, name):
    f = getattr(mod, name)
    @functools.wraps(f)
    def g(*a, **k):
        t = time.time(); r = f(*a, **k); T[name] = T.get(name, 0) + time.time() - t; return r
    setattr(mod, name, g)
for n in ("mean_activations", "attribute_metrics", "exact_effects", "discover", "evaluate_sets"):
    wrap(E, n)
reps = build_representations(model, profile, progress=False)
loaded = load_model(model)
cfg = E.settings(profile); seed = E.circuit_seed(profile, study_for(profile), emo)
texts = E.design_texts(reps.prompts, emo, cfg, seed)
t = time.time()
r = E._compute(loaded, reps, emo, cfg, seed, texts, __import__("pathlib").Path(tempfile.mkdtemp()), False,
               study_for(profile).design(emo).target_words)
print(f"total {time.time()-t:.1f}s", {k: round(v, 1) for k, v in T.items()}, "size", r["size"], "faith", round(r["faithfulness"], 6), "compl", round(r["completeness"], 6), "nullmean", round(float(np.mean(r["null_faithfulness"])), 6))
