"""Kantata OX (formerly Mavenlink) API v1 sandbox: workspaces, stories, staffing, time, expenses, events.

Build one with `create_kantata_sandbox`; the seed's well-known ids live in `sandboxes.kantata.data`.
"""

from __future__ import annotations

from sandboxes.kantata.app import KantataSandbox, KantataSandboxSettings, create_kantata_sandbox

__all__ = ["KantataSandbox", "KantataSandboxSettings", "create_kantata_sandbox"]
