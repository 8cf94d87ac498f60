"""The PSA domain (delivery): its port and the Kantata adapter."""

from __future__ import annotations

from system_apis.psa.port import PsaPort, TimeEntryFilter

__all__ = ["PsaPort", "TimeEntryFilter"]
