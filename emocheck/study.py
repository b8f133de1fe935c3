"""The study: which emotions, measured against which neutral label, with which instruments.

Every phase reads its emotions and their instruments here (no phase keeps its own copy):

* ``emotions``: the dataset's emotions (every non-neutral label of the active emotion prompts), the
  embedded study's in its order (gratitude, anger, apology; the seeds of phases 5-8 are indexed by
  it) and then any other emotions in alphabetical order.
* per emotion (:class:`EmotionDesign`):
  ``instruments``  evaluator readings the emotion is predicted to move, in order, each ``(name, sign)``:
                   ``sentiment`` or ``politeness`` (the MiniLM heads' scores), or a GoEmotions label of
                   the emotion evaluator (column ``emo_<label>``); sign +1 raises, -1 lowers. The first
                   is the emotion's phase-5 *target* (sweep figure, circuit modulation, Q8 claims).
  ``label``        the GoEmotions label that is the emotion itself (phase 6's generation claims).
  ``contrast``     the other emotion its vector must beat on its instruments (Q3 specificity claims).
  ``readout_words`` words the Q1 read-out claim reads through the unembedding;
  ``target_words`` next-token words of the circuits' log-probability metric (phase 8);
  ``prompt_prefix`` the emotional sentence of the prompting reference condition (phase 5).
* the fluency non-inferiority margins of phase 5 (``nll_margin``, ``rep3_margin``).

An emotion the embedded study does not know gets, unless the configuration says otherwise: its own
name as label and as its one raising instrument when that name is a label of the emotion evaluator
(joy, fear, sadness, ...; else no label and no instrument), its name as its one read-out and target
word, the first other emotion of the study as contrast, and no prompt prefix. So its claims are:

  every emotion        Q1 (representations, read-out), Q2 (alignment), phase-5 fluency and
                       propagation, phase-6 screening and ablation, phase-8 circuits
  with instruments     the Q3 residual-patching claims on each instrument (and the specificity claims
                       against its contrast), the phase-6 generation claims (with a label) and the
                       phase-8 modulation claims (on its target)
  with a prompt prefix the prompting reference claims

Define your own in ``[tool.emocheck.study]`` of pyproject.toml (or a TOML file named by
``$EMOCHECK_STUDY``, with the same keys at top level)::

    [tool.emocheck.study.joy]
    instruments = ["sentiment", "joy"]          # each "name" (raises) or "-name" (lowers)
    label = "joy"
    contrast = "anger"
    readout_words = ["happy", "glad", "joy"]
    target_words = ["happy", "glad"]
    prompt_prefix = "I am so happy, this is wonderful. "

Keys given replace the embedded design's (or the default's) one by one; unknown keys, instruments and
contrasts are one ConfigError that names them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from emocheck.dataset import NEUTRAL   # every emotion is measured against the dataset's neutral rows
from emocheck.errors import ConfigError

ENV_STUDY = "EMOCHECK_STUDY"
#: Readings of the MiniLM heads besides the emotion evaluator's labels.
SCORES = ("sentiment", "politeness")
#: The 27 GoEmotions labels of the embedded emotion evaluator (emocheck.evaluators.minilm) and neutral.
GOEMOTIONS_LABELS = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity",
    "desire", "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear",
    "gratitude", "grief", "joy", "love", "nervousness", "optimism", "pride", "realization", "relief",
    "remorse", "sadness", "surprise", "neutral",
)
#: Fluency non-inferiority margins of phase 5 (per prompt on average): a patched continuation may cost
#: at most log 1.5 nats/token of NLL and 0.10 of repeated-3-gram fraction against the baseline.
NLL_MARGIN = float(np.log(1.5))
REP3_MARGIN = 0.10


@dataclass(frozen=True)
class EmotionDesign:
    name: str
    instruments: tuple[tuple[str, int], ...] = ()
    label: str | None = None
    contrast: str | None = None
    readout_words: tuple[str, ...] = ()
    target_words: tuple[str, ...] = ()
    prompt_prefix: str | None = None

    @property
    def target(self) -> tuple[str, int] | None:
        """(samples-table column, sign) of the phase-5 target, or None without instruments."""
        if not self.instruments:
            return None
        name, sign = self.instruments[0]
        return column(name), sign


#: The embedded study (data/emotion_prompts.csv). The two word lists were chosen separately (the
#: read-out against the other emotions' words, the circuits' next-token metric), and kept as chosen.
EMBEDDED = {
    "gratitude": EmotionDesign(
        "gratitude", instruments=(("politeness", +1), ("gratitude", +1)), label="gratitude", contrast="anger",
        readout_words=("thank", "thanks", "grateful", "appreciate", "appreciated", "gratitude"),
        target_words=("thank", "thanks", "grateful", "appreciate", "gratitude"),
        prompt_prefix="Thank you so much, I am truly grateful for everything. "),
    "anger": EmotionDesign(
        "anger", instruments=(("sentiment", -1), ("anger", +1)), label="anger", contrast="gratitude",
        readout_words=("angry", "furious", "outraged", "annoyed", "anger", "rage"),
        target_words=("angry", "furious", "outraged", "unacceptable", "annoyed"),
        prompt_prefix="I am absolutely furious and fed up with this. "),
    "apology": EmotionDesign(
        "apology", instruments=(("remorse", +1),), label="remorse", contrast="gratitude",
        readout_words=("sorry", "apologize", "apologise", "apologies", "apology", "regret"),
        target_words=("sorry", "apologize", "apologies", "regret", "apologise"),
        prompt_prefix="I am so sorry, I sincerely apologise for my mistake. "),
}
EMBEDDED_EMOTIONS = tuple(EMBEDDED)


def column(instrument: str) -> str:
    """The samples-table column of an instrument: sentiment / politeness, else ``emo_<label>``."""
    return instrument if instrument in SCORES else f"emo_{instrument}"


@dataclass(frozen=True)
class Study:
    emotions: tuple[str, ...]
    designs: dict = field(default_factory=dict)       # emotion -> EmotionDesign
    neutral: str = NEUTRAL
    nll_margin: float = NLL_MARGIN
    rep3_margin: float = REP3_MARGIN

    def design(self, emotion: str) -> EmotionDesign:
        if emotion not in self.designs:
            raise ConfigError(f"emotion {emotion!r} is not in the study; its emotions are {', '.join(self.emotions)}")
        return self.designs[emotion]

    def index(self, emotion: str) -> int:
        """The emotion's position in the study (seeds of phases 5-8 are offset by it)."""
        return self.emotions.index(emotion)

    def targets(self) -> dict[str, tuple[str, int]]:
        """emotion -> (column, sign) of its phase-5 target, for the emotions with instruments."""
        return {e: self.designs[e].target for e in self.emotions if self.designs[e].target is not None}

    def labels(self) -> dict[str, str]:
        """emotion -> the emotion evaluator column that is the emotion itself, for those with a label."""
        return {e: f"emo_{self.designs[e].label}" for e in self.emotions if self.designs[e].label}

    def score_columns(self) -> tuple[str, ...]:
        """The columns the phase-5 scoring writes: sentiment, politeness, then one per GoEmotions label
        the study reads (its emotions' labels, then the other labels its instruments name)."""
        labels = [self.designs[e].label for e in self.emotions if self.designs[e].label]
        labels += [n for e in self.emotions for n, _ in self.designs[e].instruments if n not in SCORES]
        return (*SCORES, *(f"emo_{label}" for label in dict.fromkeys(labels)))

    def instrument_claims(self, sign: int) -> list[tuple[str, str]]:
        """(emotion, instrument) of every instrument predicted to move with `sign` (+1 raises, -1 lowers)."""
        return [(e, n) for e in self.emotions for n, s in self.designs[e].instruments if s == sign]

    def target_claims(self, sign: int) -> list[tuple[str, str]]:
        """(emotion, instrument) of each emotion's target when it moves with `sign`."""
        return [(e, self.designs[e].instruments[0][0]) for e in self.emotions
                if self.designs[e].instruments and self.designs[e].instruments[0][1] == sign]

    def contrast_claims(self, sign: int) -> list[tuple[str, str, str]]:
        """(emotion, contrast emotion, instrument) for each instrument moving with `sign`."""
        return [(e, self.designs[e].contrast, n) for e in self.emotions for n, s in self.designs[e].instruments
                if s == sign and self.designs[e].contrast in self.emotions]

    def prompted(self) -> tuple[str, ...]:
        """Emotions with a prompt prefix (the prompting reference condition and its claims)."""
        return tuple(e for e in self.emotions if self.designs[e].prompt_prefix)


def default_design(emotion: str, emotions) -> EmotionDesign:
    """The design of an emotion the embedded study does not know (module doc)."""
    others = [e for e in emotions if e != emotion]
    known = emotion in GOEMOTIONS_LABELS and emotion != NEUTRAL
    return EmotionDesign(emotion, instruments=((emotion, +1),) if known else (), label=emotion if known else None,
                         contrast=others[0] if others else None, readout_words=(emotion,), target_words=(emotion,))


def order(emotions) -> tuple[str, ...]:
    """The embedded study's emotions first, in its order, then the others alphabetically."""
    found = [e for e in dict.fromkeys(emotions) if e != NEUTRAL]
    return tuple([e for e in EMBEDDED_EMOTIONS if e in found] + sorted(e for e in found if e not in EMBEDDED))


_KEYS = [f.name for f in fields(EmotionDesign) if f.name != "name"]


def _words(where: str, emotion: str, key: str, value) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value \
            or not all(isinstance(w, str) and w.strip() for w in value):
        raise ConfigError(f"{where}: emotion {emotion!r} key {key!r} = {value!r}: give a list of one or more words")
    return tuple(w.strip() for w in value)


def _instruments(where: str, emotion: str, value) -> tuple[tuple[str, int], ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ConfigError(f"{where}: emotion {emotion!r} key 'instruments' = {value!r}: give a list such as "
                          '["sentiment", "-politeness", "joy"] ("-" marks an instrument the emotion lowers)')
    out = []
    for item in items:
        name = str(item).strip()
        sign = -1 if name.startswith("-") else +1
        name = name.lstrip("+-").strip()
        if name not in SCORES and (name not in GOEMOTIONS_LABELS or name == NEUTRAL):
            raise ConfigError(f"{where}: emotion {emotion!r} has unknown instrument {name!r}; one of "
                              f"{', '.join(SCORES)} or a label of the emotion evaluator ({', '.join(GOEMOTIONS_LABELS[:-1])})")
        out.append((name, sign))
    return tuple(out)


def design_from_config(emotion: str, table: dict, base: EmotionDesign, where: str) -> EmotionDesign:
    """`base` with the keys of one `[tool.emocheck.study.<emotion>]` table."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{emotion}] must be a table of keys ({', '.join(_KEYS)})")
    unknown = [k for k in table if k not in _KEYS]
    if unknown:
        raise ConfigError(f"{where}: emotion {emotion!r} has unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"allowed: {', '.join(_KEYS)}")
    values = {}
    for key, value in table.items():
        if key == "instruments":
            values[key] = _instruments(where, emotion, value)
        elif key in ("readout_words", "target_words"):
            values[key] = _words(where, emotion, key, value)
        elif key == "label":
            if value not in GOEMOTIONS_LABELS or value == NEUTRAL:
                raise ConfigError(f"{where}: emotion {emotion!r} label {value!r} is not a label of the emotion "
                                  f"evaluator; one of {', '.join(GOEMOTIONS_LABELS[:-1])}")
            values[key] = value
        elif key in ("contrast", "prompt_prefix"):
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{where}: emotion {emotion!r} key {key!r} = {value!r}: give a non-empty text")
            values[key] = value if key == "prompt_prefix" else value.strip()
    return replace(base, **values)


def _read_toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def config_tables(path: str | os.PathLike | None = None) -> tuple[dict, str]:
    """(emotion -> table, where) of the study configuration: `path` (a study TOML file), else
    $EMOCHECK_STUDY, else `[tool.emocheck.study]` of ./pyproject.toml ({} when there is none)."""
    path = path or os.environ.get(ENV_STUDY)
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"study file {p} does not exist (set by {ENV_STUDY} or the caller); give an existing TOML file")
        return _read_toml(p), str(p)
    p = Path.cwd() / "pyproject.toml"
    if not p.is_file():
        return {}, str(p)
    tables = _read_toml(p).get("tool", {}).get("emocheck", {}).get("study", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{p}: [tool.emocheck.study] must hold one table per emotion")
    return tables, f"{p} [tool.emocheck.study]"


def make_study(emotions, tables: dict | None = None, where: str = "study configuration") -> Study:
    """The study of a dataset's `emotions` with the configuration's per-emotion `tables`."""
    ordered = order(emotions)
    if not ordered:
        raise ConfigError("the study has no emotions: the dataset needs at least one non-neutral emotion")
    tables = tables or {}
    designs = {}
    for e in ordered:
        base = EMBEDDED.get(e) or default_design(e, ordered)
        designs[e] = design_from_config(e, tables[e], base, where) if e in tables else base
    for e, d in designs.items():
        if d.contrast is not None and d.contrast not in ordered and e in tables and "contrast" in tables[e]:
            raise ConfigError(f"{where}: emotion {e!r} has contrast {d.contrast!r}, which is not an emotion of the "
                              f"dataset ({', '.join(ordered)})")
    return Study(emotions=ordered, designs=designs)


@lru_cache(maxsize=16)
def _study_of_file(path: str, stamp: tuple, config: str | None, config_stamp: tuple) -> Study:
    import warnings

    from emocheck.dataset import emotions_of, load_emotion_prompts

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # the missing-trigger warning is the build's to give
        prompts = load_emotion_prompts(path)
    tables, where = config_tables(config)
    return make_study(emotions_of(prompts), tables, where)


def _stamp(path) -> tuple:
    try:
        st = Path(path).stat()
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return ()


def study_for(profile=None, prompts=None) -> Study:
    """The active study: the emotions of `prompts` (a loaded table) or else of the profile's dataset
    ($EMOCHECK_DATASET, else the project's data/), with the study configuration (module doc)."""
    config = os.environ.get(ENV_STUDY) or None
    config_path = config or str(Path.cwd() / "pyproject.toml")
    if prompts is not None:
        tables, where = config_tables(config)
        return make_study([e for e in prompts["emotion"].unique()], tables, where)
    from emocheck.dataset import default_dataset_path

    path = Path(getattr(profile, "dataset", None) or default_dataset_path()).resolve()
    return _study_of_file(str(path), _stamp(path), config, _stamp(config_path))
