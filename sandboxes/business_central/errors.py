"""Business Central's error answers: ``{"error": {"code", "message"}}`` with its codes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DIALOG",
    "FIELD_VALIDATION",
    "STRING_TOO_LONG",
    "BusinessCentralError",
    "bad_request",
    "error_body",
    "not_found",
]


# Unverified: the code for a business rule a page's trigger refuses (Business Central raises these from
# AL "Error(...)" dialogs) and for a value of the wrong type in a body.
DIALOG = "Application_DialogException"
FIELD_VALIDATION = "Application_FieldValidationException"
STRING_TOO_LONG = "Application_StringExceededLength"


class BusinessCentralError(Exception):
    """An error answered as ``{"error": {"code", "message"}}``."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message)


def error_body(code: str, message: str) -> dict[str, Any]:
    # Business Central appends the request's correlation id to every message, two spaces before it.
    return {"error": {"code": code, "message": f"{message}  CorrelationId:  {uuid.uuid4()}."}}


def not_found(what: str = "resource") -> BusinessCentralError:
    return BusinessCentralError(404, "BadRequest_NotFound", f"The {what} you are looking for does not exist.")


def bad_request(message: str) -> BusinessCentralError:
    return BusinessCentralError(400, "BadRequest", message)
