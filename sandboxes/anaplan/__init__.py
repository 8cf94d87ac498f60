"""Anaplan sandbox: the authentication service and Integration API v2 (workspaces, models, files in chunks,
imports and exports run as polled tasks) over a revenue-planning model.

Build one with `create_anaplan_sandbox`; the seed's well-known ids and the development user
(`DEV_USER`, `DEV_PASSWORD`) live in `sandboxes.anaplan.data`.
"""

from __future__ import annotations

from sandboxes.anaplan.app import AnaplanSandbox, AnaplanSandboxSettings, create_anaplan_sandbox
from sandboxes.anaplan.data import DEV_PASSWORD, DEV_USER

__all__ = ["DEV_PASSWORD", "DEV_USER", "AnaplanSandbox", "AnaplanSandboxSettings", "create_anaplan_sandbox"]
