"""The FP&A domain (planning): its port and the Anaplan adapter."""

from __future__ import annotations

from system_apis.fpa.port import FpaPort

__all__ = ["FpaPort"]
