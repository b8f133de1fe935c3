"""Which research question a claim family answers, in plain words, for grouping the reports.

The mapping goes by the family name's prefix (``q1_...``, ``q3_...``, ``evaluator_...``): the claim
modules name their families that way. A family that matches no prefix (a user's own claims) is listed
under "Other claims".
"""
from __future__ import annotations

from typing import NamedTuple


class Question(NamedTuple):
    key: str
    title: str
    plain: str
    prefixes: tuple[str, ...]


QUESTIONS: tuple[Question, ...] = (
    Question("Q1", "Where is emotion written in the model?",
             "Which layers, token positions and heads carry gratitude, anger and apology as against neutral "
             "text, whether that beats the emotion words alone, and whether it transfers between prompt kinds.",
             ("q1_",)),
    Question("Q2", "Is the emotion structure shared across models?",
             "Whether one model's emotion subspace maps onto another's by a linear map learned on neutral text, "
             "more than chance pairings and permuted labels allow.", ("q2_",)),
    Question("Q3", "Does steering change what the model writes?",
             "Whether adding an emotion vector to the residual stream, or patching and ablating the top emotion "
             "heads, moves the evaluators' scores of the generated text beyond random controls, and what it "
             "costs in fluency.", ("q3_",)),
    Question("Q8", "Is there a small circuit that carries the emotion?",
             "Whether a few heads and MLPs recover the emotion's effect better than random circuits of the same "
             "size, and whether patching that circuit steers generation like residual steering or prompting.",
             ("q8_",)),
    Question("Instruments", "Can the instruments be trusted?",
             "Whether the evaluators that score generated text (sentiment, politeness, emotion classifiers) "
             "separate emotional from neutral text, and each emotion from the others.", ("evaluator_",)),
)
OTHER = Question("Other", "Other claims", "Families whose name matches no research question.", ())

__all__ = ["QUESTIONS", "OTHER", "Question", "question_of", "by_question"]


def question_of(family: str) -> Question:
    """The question a family answers (OTHER when its name has no known prefix)."""
    name = str(family or "").lower()
    for q in QUESTIONS:
        if any(name.startswith(p) or name == p.rstrip("_") for p in q.prefixes):
            return q
    return OTHER


def by_question(families) -> list[tuple[Question, list[str]]]:
    """Family names grouped by question, questions in QUESTIONS order (OTHER last), names sorted;
    questions with no family are left out."""
    groups: dict[str, list[str]] = {}
    for fam in families:
        groups.setdefault(question_of(fam).key, []).append(fam)
    return [(q, sorted(groups[q.key])) for q in (*QUESTIONS, OTHER) if q.key in groups]
