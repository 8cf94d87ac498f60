"""Salesforce REST API sandbox: OAuth client credentials, sObject read/update, SOQL queries, limits.

Build one with `create_salesforce_sandbox`; the seed's well-known record ids live in
`sandboxes.salesforce.data`.
"""

from __future__ import annotations

from sandboxes.salesforce.app import SalesforceSandbox, SalesforceSandboxSettings, create_salesforce_sandbox

__all__ = ["SalesforceSandbox", "SalesforceSandboxSettings", "create_salesforce_sandbox"]
