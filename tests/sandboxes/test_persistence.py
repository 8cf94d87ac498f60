"""A sandbox kept in a data directory: its answered writes survive a restart, its reads write nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar

from sandboxes.adaptive import create_adaptive_sandbox
from sandboxes.anaplan import create_anaplan_sandbox
from sandboxes.business_central import create_business_central_sandbox
from sandboxes.kantata import create_kantata_sandbox
from sandboxes.netsuite import create_netsuite_sandbox
from sandboxes.persistence import SandboxStateError, SandboxStore, data_dir_in_use, persist_sandbox
from sandboxes.salesforce import create_salesforce_sandbox

KANTATA_TOKEN = {"Authorization": "Bearer stratum-kantata-sandbox-token"}
NEW_WORKSPACE = {
    "workspace": {"title": "Persisted - Data Platform", "creator_role": "maven", "currency": "USD"}
}
FACTORIES: dict[str, Callable[[], Litestar]] = {
    "salesforce": create_salesforce_sandbox,
    "kantata": create_kantata_sandbox,
    "netsuite": create_netsuite_sandbox,
    "business_central": create_business_central_sandbox,
    "anaplan": create_anaplan_sandbox,
    "adaptive": create_adaptive_sandbox,
}


@asynccontextmanager
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox.test") as c:
        yield c


def kantata(data_dir: Path) -> Litestar:
    return persist_sandbox(create_kantata_sandbox(), data_dir, "kantata")


async def workspaces_titled(app: Litestar, title: str) -> int:
    async with client(app) as http:
        response = await http.get("/__sandbox/records/workspaces", params={"title": title})
    count: int = response.json()["count"]
    return count


async def test_an_answered_write_is_found_by_a_restarted_sandbox(tmp_path: Path) -> None:
    running = kantata(tmp_path)
    async with client(running) as http:
        created = await http.post("/api/v1/workspaces", json=NEW_WORKSPACE, headers=KANTATA_TOKEN)
    assert created.status_code == 200, created.text

    # Another sandbox on the same directory while the first still runs: a killed server's restart.
    restarted = kantata(tmp_path)

    assert await workspaces_titled(restarted, "Persisted - Data Platform") == 1
    assert (tmp_path / "sandboxes" / "kantata.json").is_file()


async def test_a_restarted_sandbox_continues_its_ids(tmp_path: Path) -> None:
    before = kantata(tmp_path)
    async with client(before) as http:
        first = (await http.post("/api/v1/workspaces", json=NEW_WORKSPACE, headers=KANTATA_TOKEN)).json()
    before.state.sandbox_store.release()  # the process exits
    after = kantata(tmp_path)
    async with client(after) as http:
        second = (await http.post("/api/v1/workspaces", json=NEW_WORKSPACE, headers=KANTATA_TOKEN)).json()
    after.state.sandbox_store.release()

    assert first["results"][0]["id"] != second["results"][0]["id"]
    assert await workspaces_titled(kantata(tmp_path), "Persisted - Data Platform") == 2


async def test_reads_and_writes_that_change_nothing_save_nothing(tmp_path: Path) -> None:
    app = persist_sandbox(create_salesforce_sandbox(), tmp_path, "salesforce")
    async with client(app) as http:
        token = await http.post(
            "/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "stratum-sandbox",
                "client_secret": "stratum-sandbox-secret",
            },
        )
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        query = {"q": "SELECT Id FROM Account"}
        read = await http.get("/services/data/v61.0/query", params=query, headers=auth)
        refused = await http.post("/services/data/v61.0/sobjects/Account", json={}, headers=auth)

    assert (token.status_code, read.status_code, refused.status_code) == (200, 200, 400)
    assert not (tmp_path / "sandboxes" / "salesforce.json").exists()


async def test_a_write_that_cannot_be_saved_answers_503_and_is_forgotten(tmp_path: Path) -> None:
    app = kantata(tmp_path)
    # A directory where the state file goes: the rename fails, as on a full or read-only disk.
    (tmp_path / "sandboxes" / "kantata.json").mkdir(parents=True)
    async with client(app) as http:
        response = await http.post("/api/v1/workspaces", json=NEW_WORKSPACE, headers=KANTATA_TOKEN)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert await workspaces_titled(app, "Persisted - Data Platform") == 0
    assert list((tmp_path / "sandboxes").glob("*.tmp")) == []


async def test_a_reset_is_saved_too(tmp_path: Path) -> None:
    async with client(kantata(tmp_path)) as http:
        await http.post("/api/v1/workspaces", json=NEW_WORKSPACE, headers=KANTATA_TOKEN)
        assert (await http.post("/__sandbox/reset")).status_code == 204

    assert await workspaces_titled(kantata(tmp_path), "Persisted - Data Platform") == 0


@pytest.mark.parametrize("vendor", list(FACTORIES))
def test_every_sandbox_restores_exactly_what_it_saved(tmp_path: Path, vendor: str) -> None:
    saved = FACTORIES[vendor]().state.sandbox
    store = SandboxStore(tmp_path, vendor)
    store.save(msgspec.json.encode(saved.durable_state()))

    restored = FACTORIES[vendor]().state.sandbox
    restored.restore_durable_state(store.load(restored.durable_type))

    # Plain equality also tells Decimal("1.00") from "1.00", so money keeps its type.
    by_stored = vendor in ("anaplan", "adaptive")
    expected: Any = saved.stored() if by_stored else saved.records
    actual: Any = restored.stored() if by_stored else restored.records
    assert actual == expected


def test_an_unreadable_state_is_refused_not_replaced_by_the_seed(tmp_path: Path) -> None:
    (tmp_path / "sandboxes").mkdir()
    (tmp_path / "sandboxes" / "netsuite.json").write_bytes(b"\x93not a saved state")

    with pytest.raises(SandboxStateError, match=r"netsuite\.json"):
        persist_sandbox(create_netsuite_sandbox(), tmp_path, "netsuite")


def test_a_persisted_sandbox_marks_its_data_directory_in_use(tmp_path: Path) -> None:
    assert not data_dir_in_use(tmp_path)
    app = kantata(tmp_path)
    assert data_dir_in_use(tmp_path)
    assert app.state.sandbox is not None


async def test_only_one_process_on_a_data_directory_saves_a_vendor(tmp_path: Path) -> None:
    # `stratum serve --workers 2` with the sandboxes mounted: each process has its own copy of the records.
    # Were both to save, the second save would drop the workspace the first had answered.
    owner, other = kantata(tmp_path), kantata(tmp_path)
    async with client(owner) as http:
        kept = await http.post("/api/v1/workspaces", json=NEW_WORKSPACE, headers=KANTATA_TOKEN)
    async with client(other) as http:
        in_memory = await http.post(
            "/api/v1/workspaces",
            json={"workspace": {"title": "Only in memory", "creator_role": "maven"}},
            headers=KANTATA_TOKEN,
        )
        assert await workspaces_titled(other, "Only in memory") == 1
    assert (kept.status_code, in_memory.status_code) == (200, 200)
    owner.state.sandbox_store.release()
    other.state.sandbox_store.release()

    restarted = kantata(tmp_path)
    assert await workspaces_titled(restarted, "Persisted - Data Platform") == 1
    assert await workspaces_titled(restarted, "Only in memory") == 0
