"""NetSuite SuiteTalk REST sandbox: OAuth 2.0 client credentials (JWT assertion), records, SuiteQL, jobs.

Build one with `create_netsuite_sandbox`; the seed's well-known internal ids live in
`sandboxes.netsuite.data`. The development client (`DEV_CLIENT_ID`, `DEV_CERTIFICATE_ID`,
`dev_private_key_pem`) is registered in every sandbox, so an adapter can authenticate out of the box.
"""

from __future__ import annotations

from sandboxes.netsuite.app import (
    NetSuiteClient,
    NetSuiteSandbox,
    NetSuiteSandboxSettings,
    create_netsuite_sandbox,
    dev_client,
)
from sandboxes.netsuite.data import DEV_CERTIFICATE_ID, DEV_CLIENT_ID, dev_private_key_pem, dev_public_key_pem

__all__ = [
    "DEV_CERTIFICATE_ID",
    "DEV_CLIENT_ID",
    "NetSuiteClient",
    "NetSuiteSandbox",
    "NetSuiteSandboxSettings",
    "create_netsuite_sandbox",
    "dev_client",
    "dev_private_key_pem",
    "dev_public_key_pem",
]
