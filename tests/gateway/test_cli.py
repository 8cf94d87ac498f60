"""`stratum token`: the token endpoint's scope rule; and the data directory the CLI and the gateway make."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt

from apis.cli import main
from apis.config import Settings
from apis.oauth_server import DevAuthorizationServer


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("STRATUM_DATA_DIR", str(path))
    return path


def _token(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["token", *args])
    out, err = capsys.readouterr()
    return code, out.strip(), err


def _scopes(data_dir: Path, token: str) -> set[str]:
    server = DevAuthorizationServer(
        issuer="http://127.0.0.1:8000", audience="stratum", data_dir=str(data_dir)
    )
    claims = jwt.decode(token, server.keys.public).claims
    return set(str(claims["scope"]).split())


@pytest.mark.parametrize(
    ("client", "scope", "reason"),
    [
        ("stratum-demo", "system:reed", "unknown scope: system:reed"),
        ("stratum-demo", "system:read system:reed", "unknown scope: system:reed"),
        ("stratum-process-tier", "process:admin", "client stratum-process-tier may not have: process:admin"),
    ],
)
def test_token_refuses_a_scope_the_endpoint_refuses(
    data_dir: Path, capsys: pytest.CaptureFixture[str], client: str, scope: str, reason: str
) -> None:
    code, out, err = _token(capsys, "--client", client, "--scope", scope)
    assert code == 2
    assert out == ""  # no token at all, rather than one with every scope
    assert f"invalid_scope: {reason}" in err


async def test_the_endpoint_refuses_the_same_requests(gw: Any) -> None:
    for client, scope in [("stratum-demo", "system:reed"), ("stratum-process-tier", "process:admin")]:
        secret = gw.runtime.dev_server.clients[client].client_secret
        response = await gw.client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client,
                "client_secret": secret,
                "scope": scope,
            },
        )
        assert response.status_code == 400, scope
        assert response.json()["error"] == "invalid_scope"


def test_token_grants_what_was_asked(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, token, err = _token(capsys, "--scope", "system:read process:run")
    assert code == 0
    assert err == ""
    assert _scopes(data_dir, token) == {"system:read", "process:run"}


def test_token_says_when_it_grants_less(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, token, err = _token(
        capsys, "--client", "stratum-process-tier", "--scope", "system:read process:admin"
    )
    assert code == 0
    assert _scopes(data_dir, token) == {"system:read"}
    assert "granted only 'system:read'" in err


def test_token_without_scope_gets_every_scope_of_the_client(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, token, _ = _token(capsys, "--client", "stratum-process-tier")
    assert code == 0
    assert _scopes(data_dir, token) == {"system:read", "system:write"}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_cli_makes_a_private_data_directory(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _token(capsys)[0] == 0
    assert _mode(data_dir) == 0o700
    assert {p.name: _mode(p) for p in data_dir.iterdir()} == {
        "clients.json": 0o600,
        "signing-key.json": 0o600,
    }


async def test_the_gateway_keeps_everything_in_the_data_directory_private(
    tmp_path: Path, make_gateway: Any, make_settings: Any
) -> None:
    data_dir = tmp_path / "data"
    # A directory left by an older Stratum (the umask's 0755), with its run database 0644.
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    (data_dir / "workflows.sqlite").touch(mode=0o644)
    (data_dir / "workflows.sqlite").chmod(0o644)
    settings: Settings = make_settings(data_dir=str(data_dir))
    gw = await make_gateway(settings)
    # A vendor write, so a mounted sandbox saves its records (customer data) in the data directory.
    async with gw.sandbox("kantata") as kantata:
        created = await kantata.post(
            "/api/v1/workspaces.json",
            headers={"Authorization": "Bearer stratum-kantata-sandbox-token"},
            json={"workspace": {"title": "Mode probe", "creator_role": "maven"}},
        )
        assert created.status_code == 200, created.text

    assert _mode(data_dir) == 0o700
    files = {str(p.relative_to(data_dir)): _mode(p) for p in data_dir.rglob("*")}
    assert files["sandboxes/kantata.json"] == 0o600
    assert {name: mode for name, mode in files.items() if not name.startswith("sandboxes/")} == {
        "clients.json": 0o600,
        "signing-key.json": 0o600,
        "crm-events.secret": 0o600,
        "workflows.sqlite": 0o600,
        # The run database is in WAL mode: its log and shared-memory index exist while it is open.
        "workflows.sqlite-wal": 0o600,
        "workflows.sqlite-shm": 0o600,
        "sandboxes": 0o700,
    }
    assert all(mode == 0o600 for name, mode in files.items() if name.startswith("sandboxes/")), files
    # SQLite gives the files it makes beside the database the database's mode.
    with sqlite3.connect(data_dir / "workflows.sqlite") as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE mode_probe (x)")
        assert _mode(data_dir / "workflows.sqlite-wal") == 0o600
        assert _mode(data_dir / "workflows.sqlite-shm") == 0o600
