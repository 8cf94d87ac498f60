"""STRATUM_PROFILE=production: every development shortcut is refused at once, before anything starts; a
complete production configuration starts; /metrics is served only where configured."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from apis.config import Settings, load_settings
from apis.profile import production_violations
from tests.conftest import REDIS_URL
from tests.e2e.harness import STRATUM, Server, free_port

ALL_TIERS = ("system", "process", "experience")
PG_ADMIN = os.environ.get("STRATUM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# Nothing listens on port 9 (discard): the vendors are never called here, only configured.
VENDOR = "http://127.0.0.1:9"


def complete(key_file: Path, issuer: str = "https://idp.example") -> dict[str, str]:
    """A production environment with no shortcut left."""
    return {
        "STRATUM_PROFILE": "production",
        "STRATUM_OAUTH_ISSUER": issuer,
        "STRATUM_OAUTH_TOKEN_URL": f"{issuer}/oauth/token",
        "STRATUM_PROCESS_CLIENT": json.dumps({"client_id": "stratum-process-tier", "client_secret": "p1"}),
        "STRATUM_EXPERIENCE_CLIENT": json.dumps(
            {"client_id": "stratum-experience-tier", "client_secret": "e1"}
        ),
        "STRATUM_MOUNT_SANDBOXES": "false",
        "STRATUM_REDIS_URL": REDIS_URL,
        "STRATUM_WORKFLOWS__DATABASE_URL": "postgresql://stratum@db.example/stratum",
        "STRATUM_SALESFORCE__BASE_URL": f"{VENDOR}/salesforce",
        "STRATUM_SALESFORCE__CLIENT_ID": "3MVG9-connected-app",
        "STRATUM_SALESFORCE__CLIENT_SECRET": "connected-app-secret",
        "STRATUM_KANTATA__BASE_URL": f"{VENDOR}/kantata",
        "STRATUM_KANTATA__TOKEN": "kantata-admin-token",
        "STRATUM_NETSUITE__ACCOUNT": "1234567",
        "STRATUM_NETSUITE__BASE_URL": f"{VENDOR}/netsuite",  # a proxy: wins over the account's host
        "STRATUM_NETSUITE__CLIENT_ID": "netsuite-integration",
        "STRATUM_NETSUITE__CERTIFICATE_ID": "netsuite-certificate",
        "STRATUM_NETSUITE__PRIVATE_KEY_FILE": str(key_file),
        "STRATUM_NETSUITE__TIME_ZONE": "America/New_York",
        "STRATUM_ANAPLAN__BASE_URL": f"{VENDOR}/anaplan",
        "STRATUM_ANAPLAN__USER": "integration@firm.example",
        "STRATUM_ANAPLAN__PASSWORD": "anaplan-password",
    }


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "netsuite.pem"
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def violations(env: dict[str, str], tiers: tuple[str, ...] = ALL_TIERS) -> list[str]:
    return production_violations(load_settings(env), tiers)


def named(found: list[str]) -> list[str]:
    """The setting each violation names (its first word)."""
    return [violation.split()[0] for violation in found]


def test_development_keeps_every_shortcut() -> None:
    assert violations({}) == []


def test_production_lists_every_violation_at_once() -> None:
    assert named(violations({"STRATUM_PROFILE": "production"})) == [
        "STRATUM_OAUTH_ISSUER",
        "STRATUM_MOUNT_SANDBOXES",
        "STRATUM_SALESFORCE__BASE_URL",
        "STRATUM_SALESFORCE__CLIENT_ID",
        "STRATUM_SALESFORCE__CLIENT_SECRET",
        "STRATUM_KANTATA__BASE_URL",
        "STRATUM_KANTATA__TOKEN",
        "STRATUM_NETSUITE__ACCOUNT",
        "STRATUM_NETSUITE__TIME_ZONE",
        "STRATUM_NETSUITE__CLIENT_ID",
        "STRATUM_NETSUITE__CERTIFICATE_ID",
        "STRATUM_NETSUITE__PRIVATE_KEY_FILE",
        "STRATUM_ANAPLAN__BASE_URL",
        "STRATUM_ANAPLAN__USER",
        "STRATUM_ANAPLAN__PASSWORD",
        "STRATUM_REDIS_URL",
        "STRATUM_WORKFLOWS__DATABASE_URL",
    ]


def test_a_complete_production_configuration_has_no_violation(key_file: Path) -> None:
    assert violations(complete(key_file)) == []


def _without(name: str) -> Callable[[dict[str, str]], None]:
    return lambda env: env.pop(name)


def _with(name: str, value: str) -> Callable[[dict[str, str]], None]:
    return lambda env: env.__setitem__(name, value)


@pytest.mark.parametrize(
    ("change", "refused"),
    [
        (_without("STRATUM_OAUTH_ISSUER"), ["STRATUM_OAUTH_ISSUER"]),
        (_without("STRATUM_OAUTH_TOKEN_URL"), ["STRATUM_OAUTH_TOKEN_URL"]),
        (_with("STRATUM_PROCESS_CLIENT", '{"client_id": "p"}'), ["STRATUM_PROCESS_CLIENT__CLIENT_SECRET"]),
        (_without("STRATUM_MOUNT_SANDBOXES"), ["STRATUM_MOUNT_SANDBOXES"]),
        (_without("STRATUM_KANTATA__BASE_URL"), ["STRATUM_KANTATA__BASE_URL"]),
        (_without("STRATUM_NETSUITE__PRIVATE_KEY_FILE"), ["STRATUM_NETSUITE__PRIVATE_KEY_FILE"]),
        # The account alone names NetSuite's host; a base URL without the account is not enough.
        (_without("STRATUM_NETSUITE__BASE_URL"), []),
        (_without("STRATUM_NETSUITE__ACCOUNT"), ["STRATUM_NETSUITE__ACCOUNT"]),
        (_without("STRATUM_NETSUITE__TIME_ZONE"), ["STRATUM_NETSUITE__TIME_ZONE"]),
        (
            _with("STRATUM_SALESFORCE__CLIENT_SECRET", "stratum-sandbox-secret"),
            ["STRATUM_SALESFORCE__CLIENT_SECRET"],
        ),
        (_with("STRATUM_KANTATA__TOKEN", "stratum-kantata-sandbox-token"), ["STRATUM_KANTATA__TOKEN"]),
        (_with("STRATUM_ANAPLAN__PASSWORD", "stratum-anaplan-sandbox"), ["STRATUM_ANAPLAN__PASSWORD"]),
        # Adaptive Planning chosen as the FP&A system with nothing of its own: the sandbox and its login.
        (
            _with("STRATUM_FPA_VENDOR", "adaptive"),
            ["STRATUM_ADAPTIVE__BASE_URL", "STRATUM_ADAPTIVE__LOGIN", "STRATUM_ADAPTIVE__PASSWORD"],
        ),
        (_without("STRATUM_REDIS_URL"), ["STRATUM_REDIS_URL"]),
        (_without("STRATUM_WORKFLOWS__DATABASE_URL"), ["STRATUM_WORKFLOWS__DATABASE_URL"]),
        # A legal entity delivered in Kantata while Certinia (in the CRM's org) is the default PSA brings
        # Kantata in, with no connection of its own.
        (
            lambda env: (
                env.__setitem__("STRATUM_PSA_VENDOR", "certinia"),
                env.__setitem__("STRATUM_PSA_BY_LEGAL_ENTITY", '{"US01": "kantata"}'),
                env.pop("STRATUM_KANTATA__BASE_URL"),
            ),
            ["STRATUM_KANTATA__BASE_URL"],
        ),
        # A legal entity billed from Business Central brings that vendor in, with no connection of its own.
        (
            _with("STRATUM_ERP_BY_LEGAL_ENTITY", '{"DE01": "business_central"}'),
            [
                "STRATUM_BUSINESS_CENTRAL__BASE_URL",
                "STRATUM_BUSINESS_CENTRAL__TENANT_ID",
                "STRATUM_BUSINESS_CENTRAL__COMPANY",
                "STRATUM_BUSINESS_CENTRAL__CLIENT_ID",
                "STRATUM_BUSINESS_CENTRAL__CLIENT_SECRET",
            ],
        ),
    ],
)
def test_each_shortcut_is_refused(
    key_file: Path, change: Callable[[dict[str, str]], None], refused: list[str]
) -> None:
    env = complete(key_file)
    change(env)
    assert named(violations(env)) == refused


def test_only_the_tiers_served_are_checked(key_file: Path) -> None:
    env = complete(key_file)
    del env["STRATUM_SALESFORCE__BASE_URL"], env["STRATUM_WORKFLOWS__DATABASE_URL"]
    # The experience tier alone calls no vendor and runs no workflow.
    assert violations(env, ("experience",)) == []
    assert named(violations(env, ("system",))) == ["STRATUM_SALESFORCE__BASE_URL"]


@pytest.mark.parametrize("command", [["serve"], ["worker"]])
def test_the_commands_refuse_before_anything_starts(tmp_path: Path, command: list[str]) -> None:
    port = free_port()
    env = {
        **os.environ,
        "STRATUM_PROFILE": "production",
        "STRATUM_DATA_DIR": str(tmp_path / "data"),
        "STRATUM_PORT": str(port),
    }
    result = subprocess.run([*STRATUM, *command], env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 2
    assert "refusing to start with STRATUM_PROFILE=production" in result.stderr
    for setting in ("STRATUM_OAUTH_ISSUER", "STRATUM_MOUNT_SANDBOXES", "STRATUM_REDIS_URL"):
        assert setting in result.stderr
    # Not even the development issuer's keys or the run database were made.
    assert not (tmp_path / "data").exists()


def test_an_asgi_server_started_by_hand_gets_the_same_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `uvicorn --factory apis.gateway:create_app`, bypassing `stratum serve`.
    from apis.gateway import create_app

    monkeypatch.setenv("STRATUM_PROFILE", "production")
    monkeypatch.setenv("STRATUM_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SystemExit, match="STRATUM_MOUNT_SANDBOXES"):
        create_app()
    assert not (tmp_path / "data").exists()


async def test_metrics_are_public_in_development(make_gateway: Any, make_settings: Any) -> None:
    gw = await make_gateway(make_settings())
    assert (await gw.client.get("/metrics")).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"profile": "production"}, 404),
        ({"profile": "production", "metrics": "public"}, 200),
        ({"metrics": "off"}, 404),
    ],
)
async def test_metrics_are_served_only_where_configured(
    make_gateway: Any, make_settings: Callable[..., Settings], overrides: dict[str, str], status: int
) -> None:
    gw = await make_gateway(make_settings(**overrides))
    response = await gw.client.get("/metrics")
    catalogue = (await gw.client.get("/")).json()
    assert response.status_code == status
    assert catalogue["metrics"] == ("/metrics" if status == 200 else None)
    if status == 404:
        assert response.headers["content-type"] == "application/problem+json"


@pytest.fixture
def database() -> Iterator[str]:
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=2) as conn:
            name = f"stratum_prod_{uuid.uuid4().hex[:10]}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_complete_production_configuration_starts(
    tmp_path: Path, key_file: Path, database: str, redis_url: str
) -> None:
    # Another Stratum, on its development issuer, plays the identity provider: JWKS and token endpoint.
    (tmp_path / "idp").mkdir()
    (tmp_path / "gw").mkdir()
    idp = Server(tmp_path / "idp", "--tiers", "system", name="idp")
    try:
        env = complete(key_file, issuer=idp.base)
        env["STRATUM_WORKFLOWS__DATABASE_URL"] = database
        clients = json.loads((tmp_path / "idp/data/clients.json").read_text())
        secrets = {client["client_id"]: client["client_secret"] for client in clients}
        for tier in ("process", "experience"):
            client_id = f"stratum-{tier}-tier"
            env[f"STRATUM_{tier.upper()}_CLIENT"] = json.dumps(
                {"client_id": client_id, "client_secret": secrets[client_id]}
            )
        gateway = Server(tmp_path / "gw", name="gateway", **env)  # waits for /health/ready
        try:
            token = httpx.post(
                f"{idp.base}/oauth/token",
                auth=("stratum-demo", secrets["stratum-demo"]),
                data={"grant_type": "client_credentials", "scope": "process:read"},
            ).json()["access_token"]
            exceptions = httpx.get(
                f"{gateway.base}/process/v1/exceptions", headers={"Authorization": f"Bearer {token}"}
            )
            assert exceptions.status_code == 200, exceptions.text
            assert httpx.get(f"{gateway.base}/metrics").status_code == 404
            assert httpx.get(f"{gateway.base}/sandboxes/salesforce/__sandbox/stats").status_code == 404
            assert httpx.post(f"{gateway.base}/oauth/token", data={}).status_code == 404
        finally:
            gateway.stop()
    finally:
        idp.stop()


def test_certinia_in_the_crms_org_needs_nothing_more(key_file: Path) -> None:
    # Certinia PSA is a managed package in the CRM's org: the Salesforce connection is the one checked.
    assert violations({**complete(key_file), "STRATUM_PSA_VENDOR": "certinia"}) == []


def test_certinia_in_a_second_org_needs_that_orgs_credentials(key_file: Path) -> None:
    env = {
        **complete(key_file),
        "STRATUM_PSA_VENDOR": "certinia",
        "STRATUM_CERTINIA__BASE_URL": f"{VENDOR}/psa",
    }
    env.pop("STRATUM_SALESFORCE__CLIENT_SECRET")
    assert named(violations(env)) == ["STRATUM_SALESFORCE__CLIENT_SECRET", "STRATUM_CERTINIA__CLIENT_SECRET"]
    env["STRATUM_CERTINIA__CLIENT_SECRET"] = "psa-org-secret"
    assert named(violations(env)) == ["STRATUM_SALESFORCE__CLIENT_SECRET"]
