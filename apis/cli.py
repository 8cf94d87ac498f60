"""The ``stratum`` command: serve, worker, token, demo reset, contracts, vendors check."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from apis.config import Settings, load_settings

if TYPE_CHECKING:
    from apis.oauth_server import DevAuthorizationServer

__all__ = ["main"]


def _fit_for_profile(settings: Settings, tiers: Sequence[str]) -> bool:
    """False, after listing every violation, when the production profile refuses ``settings``."""
    from apis.profile import production_violations, refusal_message

    violations = production_violations(settings, tiers)
    if violations:
        print(refusal_message(violations), file=sys.stderr)
    return not violations


def _serve(args: argparse.Namespace) -> int:
    import os

    from apis.data_dir import private_dir
    from apis.logging import uvicorn_log_config
    from apis.server import PortUnavailable, ServerConfig, listen, serve

    settings = load_settings()
    tiers = args.tiers or "system,process,experience"
    if not _fit_for_profile(settings, tiers.split(",")):
        return 2
    os.environ["STRATUM_TIERS"] = tiers
    # The port does not change STRATUM_PUBLIC_URL: that is the dev issuer's identifier, which tokens from
    # `stratum token` and every process sharing the data directory must agree on.
    host = args.host or settings.host
    port = args.port or settings.port
    if args.workers > 1:
        if settings.redis_url is None:
            print(
                "stratum: several workers need shared state: set STRATUM_REDIS_URL (rate limits and "
                "idempotency keys would otherwise be per process)",
                file=sys.stderr,
            )
            return 2
        from process_apis.engine import workflow_database_url

        if settings.workflows.run_in_process and workflow_database_url(settings).startswith("sqlite"):
            print(
                "stratum: several workers cannot share the embedded SQLite run database: set "
                "STRATUM_WORKFLOWS__DATABASE_URL to PostgreSQL (or STRATUM_WORKFLOWS__RUN_IN_PROCESS=false "
                "and run `stratum worker`)",
                file=sys.stderr,
            )
            return 2
    # The port first: a second `stratum serve` on a port in use must stop before it writes to the data
    # directory, clears the metrics of the workers serving there, or starts the workflow engine on their run
    # database (it would resume their runs in flight).
    try:
        sock = listen(host, port)
    except PortUnavailable as exc:
        print(f"stratum: {exc}", file=sys.stderr)
        return 1
    with sock:
        if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            metrics_dir = private_dir(settings.data_dir) / "prometheus"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            private_dir(metrics_dir)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        if settings.dev_issuer_enabled:
            # Create the dev issuer's key and client registry once, here, before workers race to.
            _dev_server(settings)
        config = ServerConfig(
            "apis.gateway:create_app",
            factory=True,
            host=host,
            port=port,
            workers=args.workers,
            log_level="warning",
            access_log=False,  # the gateway writes its own JSON access line
            proxy_headers=args.proxy_headers,
            server_header=False,
            log_config=uvicorn_log_config(settings.log_level, settings.log_format),  # its lines are JSON too
            header_timeout_seconds=settings.header_timeout_seconds,
        )
        return serve(config, sock)


def _worker(args: argparse.Namespace) -> int:
    """Run workflows, and nothing else, until SIGTERM or SIGINT; runs in flight are left to be resumed."""
    import asyncio
    import signal

    from apis.gateway import build_gateway
    from process_apis.engine import workflow_database_url

    settings = load_settings()
    # With the system tier elsewhere, steps call it by URL; otherwise this worker carries its own adapters.
    tiers = ("process",) if settings.system_url else ("system", "process")
    if not _fit_for_profile(settings, tiers):
        return 2
    if workflow_database_url(settings).startswith("sqlite"):
        print(
            "stratum: workers share runs through PostgreSQL: set STRATUM_WORKFLOWS__DATABASE_URL "
            "(with SQLite, `stratum serve` runs the workflows itself)",
            file=sys.stderr,
        )
        return 2
    if settings.redis_url is None:
        print(
            "stratum: workers need shared gateway state (events, idempotency keys): set STRATUM_REDIS_URL",
            file=sys.stderr,
        )
        return 2

    if args.metrics_port:
        # Step latency and run transitions are observed where the steps run: here.
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr=settings.host)

    async def run() -> None:
        gateway = build_gateway(settings, tiers=tiers, run_workflows=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await gateway.runtime.start()
        try:
            await stop.wait()
        finally:
            await gateway.runtime.stop()

    asyncio.run(run())
    return 0


def _dev_server(settings: Settings) -> DevAuthorizationServer:
    from apis.oauth_server import DevAuthorizationServer

    return DevAuthorizationServer(
        issuer=settings.issuer,
        audience=settings.oauth_audience,
        data_dir=settings.data_dir,
        token_ttl_seconds=settings.dev_token_ttl_seconds,
    )


def _token(args: argparse.Namespace) -> int:
    settings = load_settings()
    if not settings.dev_issuer_enabled:
        print("stratum: an external issuer is configured; get tokens from it", file=sys.stderr)
        return 2
    server = _dev_server(settings)
    if args.show_secret:
        client = server.clients.get(args.client)
        if client is None:
            print(f"stratum: unknown client {args.client!r}", file=sys.stderr)
            return 2
        print(client.client_secret)
        return 0
    from apis.oauth_server import InvalidScopeError, granted_scope

    try:
        token = server.issue_token(args.client, args.scope)
    except KeyError as exc:
        print(f"stratum: {exc.args[0]}", file=sys.stderr)
        return 2
    except InvalidScopeError as exc:
        # What the token endpoint answers for the same request.
        print(f"stratum: invalid_scope: {exc.description}", file=sys.stderr)
        return 2
    print(token)
    granted = granted_scope(server.clients[args.client], args.scope)
    if args.scope and granted.split() != args.scope.split():
        # The endpoint says so in its `scope` field; a person at the terminal is told here.
        print(f"stratum: granted only {granted!r} ({args.client} may not have the rest)", file=sys.stderr)
    return 0


# What `stratum demo reset` removes from the data directory: the run database (SQLite and its journals) and
# the sandboxes' saved records. The keys and clients (signing-key.json, clients.json, crm-events.secret) stay.
_DEMO_STATE = ("workflows.sqlite", "workflows.sqlite-wal", "workflows.sqlite-shm", "workflows.sqlite-journal")


def _demo_reset(args: argparse.Namespace) -> int:
    """Start the embedded demo over: runs and vendor sandboxes back to the seed; keys and clients kept."""
    from sandboxes.persistence import STATE_DIR, data_dir_in_use

    settings = load_settings()
    external = [
        name
        for name, url in (
            ("STRATUM_WORKFLOWS__DATABASE_URL", settings.workflows.database_url),
            ("STRATUM_REDIS_URL", settings.redis_url),
        )
        if url
    ]
    if external:
        print(
            "stratum: demo reset only resets the embedded demo in the data directory; "
            f"{' and '.join(external)} point at shared stores it will not touch (drop the runs' database "
            "and delete the gateway's Redis keys yourself, or unset them)",
            file=sys.stderr,
        )
        return 2
    data_dir = Path(settings.data_dir)
    if data_dir_in_use(data_dir):
        print(f"stratum: a Stratum process is using {data_dir}; stop it, then reset", file=sys.stderr)
        return 2
    removed = [path for path in (data_dir / name for name in _DEMO_STATE) if path.exists()]
    removed += sorted((data_dir / STATE_DIR).glob("*.json"))
    for path in removed:
        path.unlink()
    for path in removed:
        print(f"removed {path}")
    print(f"the next start runs the demo from its seed; keys and clients in {data_dir} are kept")
    return 0


def _contracts(args: argparse.Namespace) -> int:
    from apis.contracts_cli import ContractError, check_contracts, export_contracts, publish_contract

    if args.action == "export":
        for path in export_contracts():
            print(f"wrote {path}")
        return 0
    if args.action == "publish":
        if not args.contract:
            print("stratum: contracts publish needs the contract to publish, e.g. system/v1", file=sys.stderr)
            return 2
        try:
            accepted = publish_contract(args.contract, accept_break=args.accept_break)
        except ContractError as exc:
            print(f"stratum: {exc}", file=sys.stderr)
            return 1
        for breaking in accepted:
            print(f"accepted break: {breaking}", file=sys.stderr)
        print(f"published {args.contract}")
        return 0
    problems = check_contracts()
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print("contracts match the code and keep their published baselines")
    return 0


def _vendors_check(args: argparse.Namespace) -> int:
    """Log in to each configured vendor and check what the gateway needs there; 1 when something lacks."""
    import asyncio

    from apis.gateway import build_sandbox_mounts
    from apis.logging import configure_logging, route_library_logs
    from system_apis.bootstrap import build_adapters
    from system_apis.vendor_checks import Check, check_adapters, format_report

    settings = load_settings()
    # Log lines (a vendor's warnings) go to stderr: stdout is the report.
    configure_logging(settings.log_level, settings.log_format, stream=sys.stderr)
    # Built as `stratum serve` builds them: a vendor without a base URL is its sandbox, in process.
    sandboxes = build_sandbox_mounts(settings) if settings.mount_sandboxes else {}
    route_library_logs()  # the sandboxes' Litestar apps replaced the root logger's handlers

    async def run() -> list[Check]:
        adapters = build_adapters(settings, sandboxes)
        try:
            return await check_adapters([adapters.crm, adapters.psa, adapters.erp, adapters.fpa])
        finally:
            for close in adapters.closers:
                await close()

    checks = asyncio.run(run())
    print(format_report(checks))
    failed = sum(not check.ok for check in checks)
    if failed:
        print(f"stratum: {failed} of {len(checks)} vendor checks failed", file=sys.stderr)
        return 1
    print(f"all {len(checks)} vendor checks passed")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stratum", description="Stratum integration gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway (all tiers, dev issuer and sandboxes by default)")
    serve.add_argument("--host", default=None, help="bind address (default STRATUM_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default STRATUM_PORT or 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (more than 1 needs Redis)")
    serve.add_argument("--tiers", default=None, help="comma-separated tiers to serve (default: all)")
    serve.add_argument("--proxy-headers", action="store_true", help="trust X-Forwarded-* from a proxy")
    serve.set_defaults(func=_serve)

    worker = sub.add_parser(
        "worker", help="run workflow workers against the shared PostgreSQL run database (no HTTP)"
    )
    worker.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port (default: none)"
    )
    worker.set_defaults(func=_worker)

    token = sub.add_parser("token", help="print a development access token for a client")
    token.add_argument("--client", default="stratum-demo")
    token.add_argument(
        "--scope", default=None, help="space-separated scopes (default: all the client may have)"
    )
    token.add_argument("--show-secret", action="store_true", help="print the client's secret instead")
    token.set_defaults(func=_token)

    demo = sub.add_parser("demo", help="the embedded demo's state in the data directory")
    demo_sub = demo.add_subparsers(dest="demo_action", required=True)
    demo_reset = demo_sub.add_parser(
        "reset",
        help="forget workflow runs, events and sandbox records; keep keys and clients (server stopped)",
    )
    demo_reset.set_defaults(func=_demo_reset)

    contracts = sub.add_parser(
        "contracts",
        help="export the OpenAPI contracts, check them against the code and their published baselines, "
        "or publish one (move its baseline)",
    )
    contracts.add_argument("action", choices=["export", "check", "publish"])
    contracts.add_argument("contract", nargs="?", help="publish: the contract as tier/major, e.g. system/v1")
    contracts.add_argument(
        "--accept-break",
        metavar="REASON",
        default=None,
        help="publish: accept breaking changes, recording why clients are not hurt in the changelog",
    )
    contracts.set_defaults(func=_contracts)

    vendors = sub.add_parser("vendors", help="the configured vendors (Salesforce, NetSuite, ...)")
    vendors_sub = vendors.add_subparsers(dest="vendors_action", required=True)
    vendors_check = vendors_sub.add_parser(
        "check",
        help="log in to each configured vendor and check the objects, fields and settings the gateway "
        "needs there (exit 1 when something is missing)",
    )
    vendors_check.set_defaults(func=_vendors_check)

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
