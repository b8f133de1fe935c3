"""Errors that end a run with one message saying what to do.

Every error a user can cause (bad data, unknown model, layer out of range, ...) is an EmocheckError
subclass, so the pytest plugin can show the message without a traceback through library internals.
"""


class EmocheckError(Exception):
    """Base class: the message alone tells the user what went wrong and what to do."""


class ModelUnavailableError(EmocheckError):
    """The model cannot be had here (unknown name, not installed, offline, gated)."""


class DatasetError(EmocheckError):
    """A data file is malformed; the message names the file and the bad row."""


class ConfigError(EmocheckError):
    """A setting is out of range or unknown (profile, layer, site, emotion, patch window...)."""


class EvidenceError(EmocheckError):
    """A claim's evidence cannot be computed (too few samples, nothing recorded...)."""
