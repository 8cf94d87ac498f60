"""The one error tree every system adapter raises; ``apis`` maps it to problems in one place.

Adapters translate vendor failures (HTTP status, vendor error codes, transport errors) into these, so nothing
above the system tier sees a vendor's error format.
"""

from __future__ import annotations

__all__ = [
    "NotFound",
    "VendorBadResponse",
    "VendorError",
    "VendorRejected",
    "VendorTimeout",
    "VendorUnavailable",
]


class VendorError(Exception):
    """Base for everything a vendor call can fail with. ``vendor`` names the system (e.g. "salesforce")."""

    def __init__(self, vendor: str, message: str) -> None:
        super().__init__(message)
        self.vendor = vendor
        self.message = message


class NotFound(VendorError):
    """The vendor says the record does not exist (a 404 to our caller, not a vendor failure)."""


class VendorRejected(VendorError):
    """The vendor refused a request as invalid (its 400s): our mapping or our caller's data is wrong."""

    def __init__(self, vendor: str, message: str, *, vendor_code: str | None = None) -> None:
        super().__init__(vendor, message)
        self.vendor_code = vendor_code


class VendorBadResponse(VendorError):
    """The vendor answered with something unusable: an unexpected status, a body that does not parse, or a
    record that cannot be mapped (``record_id`` names it)."""

    def __init__(self, vendor: str, message: str, *, record_id: str | None = None) -> None:
        super().__init__(vendor, message)
        self.record_id = record_id


class VendorUnavailable(VendorError):
    """Down, overloaded, rate limiting us, out of API quota, or the circuit is open. Retry later."""

    def __init__(self, vendor: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(vendor, message)
        self.retry_after = retry_after


class VendorTimeout(VendorError):
    """No answer within the configured timeout."""
