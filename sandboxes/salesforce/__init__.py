"""Salesforce REST API sandbox: OAuth (client credentials, JWT bearer), sObject create/read/update/delete and
external-id upsert, SOQL queries, change feeds, composite requests and sObject Collections create,
describe (global, basic information, per object), the Organization object, limits; every current API version.
The org has the Certinia PSA managed package's objects (``pse__Proj__c``, timecards, expenses, milestones,
billing events...) beside the CRM's, with their formula fields computed as the org would.

Build one with `create_salesforce_sandbox`; the seed's well-known record ids live in
`sandboxes.salesforce.data`; `dev_jwt_private_key_pem` signs JWT bearer assertions the default settings
accept (consumer key `DEV_JWT_CONSUMER_KEY`).
"""

from __future__ import annotations

from sandboxes.salesforce.app import (
    DEV_JWT_CONSUMER_KEY,
    SalesforceSandbox,
    SalesforceSandboxSettings,
    create_salesforce_sandbox,
    dev_jwt_private_key_pem,
    dev_jwt_public_key_pem,
)

__all__ = [
    "DEV_JWT_CONSUMER_KEY",
    "SalesforceSandbox",
    "SalesforceSandboxSettings",
    "create_salesforce_sandbox",
    "dev_jwt_private_key_pem",
    "dev_jwt_public_key_pem",
]
