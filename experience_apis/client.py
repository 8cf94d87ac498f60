"""The typed clients the experience tier calls the tiers below it with."""

from __future__ import annotations

import msgspec

from process_apis.client import ProcessApiClient
from system_apis.client import SystemApiClient

__all__ = ["ExperienceClients"]


class ExperienceClients(msgspec.Struct, kw_only=True, frozen=True):
    system: SystemApiClient
    process: ProcessApiClient
