"""Workday Adaptive Planning sandbox: the XML API (``POST /api/v{NN}``) over a planning instance with a
revenue account, levels in two currencies and a Project dimension.

Build one with `create_adaptive_sandbox`; the seed's names and the development user (`DEV_LOGIN`,
`DEV_PASSWORD`) live in `sandboxes.adaptive.data`.
"""

from __future__ import annotations

from sandboxes.adaptive.app import AdaptiveSandbox, AdaptiveSandboxSettings, create_adaptive_sandbox
from sandboxes.adaptive.data import DEV_LOGIN, DEV_PASSWORD

__all__ = [
    "DEV_LOGIN",
    "DEV_PASSWORD",
    "AdaptiveSandbox",
    "AdaptiveSandboxSettings",
    "create_adaptive_sandbox",
]
