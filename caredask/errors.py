"""The caredask error family.

Every error caredask raises on bad input is a :class:`CaredaskError` and also the builtin a
Python user would expect (``ValueError``, ``FileNotFoundError``, ...), so existing ``except``
clauses keep working.  Messages say what went wrong, where (the source), and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "AxesError",
    "CaredaskError",
    "EmptyRegionError",
    "FormatError",
    "InputError",
    "MissingDependencyError",
    "NonFiniteError",
    "SourceNotFoundError",
    "UsageError",
]


class CaredaskError(Exception):
    """Base class of every error raised by caredask on bad input or bad data."""


class InputError(CaredaskError, ValueError):
    """An argument or a combination of arguments is invalid."""


class UsageError(CaredaskError, ValueError):
    """Command-line options that cannot be used as given (a missing or conflicting option)."""


class AxesError(InputError):
    """An axes string is invalid or does not fit the data it describes."""


class SourceNotFoundError(CaredaskError, FileNotFoundError):
    """A file, directory, store or URI named as input does not exist."""


class FormatError(CaredaskError, ValueError):
    """A source exists but cannot be read as an image (corrupt, unsupported layout or dtype)."""


class MissingDependencyError(CaredaskError, ImportError):
    """An optional package needed to read a source is not installed (the message says which)."""


class EmptyRegionError(CaredaskError, ValueError):
    """The patch filter left no region of an image to sample patches from."""


class NonFiniteError(CaredaskError, ValueError):
    """An image holds NaN or infinite values, which would make NaN patches."""
