"""caredask: csbdeep's exact CARE training data, on any input format, at any scale."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
