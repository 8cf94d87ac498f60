"""The gateway: one ASGI app serving the three tiers, the catalogue, health, metrics, the development
OAuth server and the vendor sandboxes, on one port.

``build_gateway`` is the composition root: it builds the runtime, the adapters, the typed inter-tier
clients and the tier apps, and routes by path prefix. Each tier app is a complete Litestar app with its own
governance and contract, so the same app can be served alone (``stratum serve --tiers system``) and
reached by the other tiers through a base URL.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import html
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import httpx
import msgspec
from litestar import Litestar, MediaType, Request, Response
from litestar.params import FromPath

from apis.config import Settings, load_settings
from apis.edge import Edge
from apis.logging import configure_logging, get_logger, route_library_logs
from apis.metrics import CONTENT_TYPE_LATEST, refresh_before_scrape, render_metrics
from apis.oauth_client import ClientCredentialsAuth
from apis.plugin import TierSpec
from apis.problems import PROBLEM_KINDS, ProblemError, exception_handlers, problem_doc_html
from apis.reference_assets import get_reference_asset
from apis.routing import operation
from apis.runtime import Runtime

if TYPE_CHECKING:
    from apis.asgi import ASGIApp, Receive, Scope, Send

__all__ = ["ALL_TIERS", "Gateway", "build_gateway", "create_app"]

ALL_TIERS: tuple[str, ...] = ("system", "process", "experience")
log = get_logger("stratum.gateway")


class Mount(msgspec.Struct, frozen=True):
    prefix: str
    app: Any
    strip_prefix: bool = False  # vendor sandboxes serve at their own root, like the real vendor


class Gateway:
    """Routes by path prefix; runs the runtime's start/stop on the ASGI lifespan."""

    def __init__(self, runtime: Runtime, root: ASGIApp, mounts: Sequence[Mount]) -> None:
        self.runtime = runtime
        self.root = root
        # Set for a served process (``create_app``), not for gateways tests build by the dozen in one process.
        self.freeze_after_start = False
        # Longest prefix first, so /sandboxes/x never shadows /sandboxes/xy.
        self.mounts = sorted(mounts, key=lambda m: len(m.prefix), reverse=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path: str = scope["path"]
        for mount in self.mounts:
            if path == mount.prefix or path.startswith(mount.prefix + "/"):
                if mount.strip_prefix:
                    scope = {
                        **scope,
                        "root_path": scope.get("root_path", "") + mount.prefix,
                        "path": path[len(mount.prefix) :] or "/",
                    }
                await mount.app(scope, receive, send)
                return
        await self.root(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.runtime.start()
                except BaseException as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                if self.freeze_after_start:
                    # What start-up built (the apps, their schemas, the sandboxes' seed, the libraries) lives
                    # as long as the process: moved out of the collector's sight, so its full collections
                    # stop walking it while serving. The cost of that walk landed on whatever allocated at
                    # the time: ~5 % of a governed read's CPU, and most of its access line's apparent cost
                    # (bench/hot_path.py). Garbage made from now on is collected as before.
                    gc.collect()
                    gc.freeze()
                log.info("gateway_started", mounts=[m.prefix for m in self.mounts])
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.runtime.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _accept_quality(accept: str) -> dict[str, float]:
    """``{media range: q}`` from an Accept header (RFC 9110 12.5.1); a malformed q counts as 0."""
    ranges: dict[str, float] = {}
    for item in accept.split(","):
        media_range, *params = (part.strip() for part in item.split(";"))
        if not media_range:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges[media_range.lower()] = max(quality, ranges.get(media_range.lower(), 0.0))
    return ranges


def _prefers_html(accept: str) -> bool:
    """HTML only for a client that names ``text/html`` and ranks it above JSON (a browser); ``*/*``, no
    Accept, or a tie answer JSON, which API clients expect."""
    ranges = _accept_quality(accept)
    html_q = ranges.get("text/html", 0.0)
    json_q = max(ranges.get(r, 0.0) for r in ("application/json", "application/*", "*/*"))
    return html_q > 0 and html_q > json_q


def _link(href: str | None) -> str:
    if not href:
        return "&mdash;"
    url = html.escape(href, quote=True)
    return f'<a href="{url}">{html.escape(href)}</a>'


def _catalogue_html(document: Mapping[str, Any]) -> str:
    """The catalogue as a page a person can read: every tier with its reference page and contract."""
    esc = html.escape
    rows = []
    for tier in document["tiers"]:
        deprecation = tier["deprecation"]
        status = "current"
        if deprecation:
            status = f"deprecated since {esc(str(deprecation.get('deprecated_at')))}"
            if deprecation.get("sunset_at"):
                status += f", sunset {esc(str(deprecation['sunset_at']))}"
        rows.append(
            f"<tr><td>{esc(tier['title'])}</td><td><code>{esc(tier['name'])}</code></td>"
            f"<td>{esc(tier['version'])}</td><td><code>{esc(tier['base_path'])}</code></td>"
            f'<td><a href="{esc(tier["reference"], quote=True)}">API reference</a></td>'
            f'<td><a href="{esc(tier["contract"], quote=True)}">OpenAPI contract</a></td>'
            f"<td>{status}</td></tr>"
        )
    oauth = document["oauth"]
    health = document["health"]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(document['name'])} API catalogue</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;"
        "line-height:1.5}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.4rem;"
        "border-bottom:1px solid #ddd}code{font-size:.95em}</style></head><body>"
        f"<h1>{esc(document['name'])}</h1><p>{esc(document['description'])}</p>"
        "<h2>APIs</h2><table><thead><tr><th>API</th><th>Tier</th><th>Version</th><th>Base path</th>"
        "<th>Reference</th><th>Contract</th><th>Status</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        "<h2>Authentication</h2><p>OAuth 2.0 client credentials; send the access token as "
        "<code>Authorization: Bearer &lt;token&gt;</code>.</p><ul>"
        f"<li>Issuer: <code>{esc(str(oauth['issuer']))}</code></li>"
        f"<li>Token endpoint: {_link(oauth['token_endpoint'])}</li>"
        f"<li>Server metadata: {_link(oauth['metadata'])}</li></ul>"
        "<h2>Operations</h2><ul>"
        f"<li>Liveness: {_link(health['live'])}</li><li>Readiness: {_link(health['ready'])}</li>"
        f"<li>Metrics: {_link(document['metrics'])}</li>"
        f"<li>Problem types (errors): {_link(document['problems'])}</li></ul>"
        "<p>API clients get this catalogue as JSON (<code>Accept: application/json</code>).</p>"
        "</body></html>"
    )


def _root_app(runtime: Runtime, tiers: Sequence[TierSpec]) -> Litestar:
    settings = runtime.settings
    dev = runtime.dev_server

    @operation("GET", "/", operation_id="getCatalogue", summary="Tiers, versions and contracts", public=True)
    async def catalogue(request: Request[Any, Any, Any]) -> Response[Any]:
        document = {
            "name": "Stratum",
            "description": "Integration gateway: CRM, PSA, ERP and FP&A behind versioned, governed APIs.",
            "tiers": [
                {
                    "name": t.name,
                    "version": t.version,
                    "title": t.title,
                    "base_path": t.prefix,
                    "contract": f"{t.schema_path}/openapi.json",
                    "reference": f"{t.schema_path}/docs",
                    "deprecation": msgspec.to_builtins(settings.deprecations.get(t.key)),
                }
                for t in tiers
            ],
            "oauth": {
                "issuer": settings.issuer,
                "token_endpoint": "/oauth/token" if dev else settings.oauth_token_url,
                "metadata": "/.well-known/oauth-authorization-server" if dev else None,
            },
            "health": {"live": "/health/live", "ready": "/health/ready"},
            "metrics": "/metrics" if settings.metrics_public else None,
            "problems": "/problems",
        }
        # One resource, two representations: the answer depends on Accept, so caches must key on it.
        headers = {"Vary": "Accept"}
        if _prefers_html(request.headers.get("accept", "")):
            return Response(_catalogue_html(document), media_type=MediaType.HTML, headers=headers)
        return Response(document, headers=headers)

    @operation("GET", "/health/live", operation_id="getLiveness", summary="The process answers", public=True)
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @operation(
        "GET", "/health/ready", operation_id="getReadiness", summary="Dependencies answer", public=True
    )
    async def ready() -> Response[Any]:
        # Every dependency at once, each bounded, so a dead one answers in about a second and is named.
        probes = {"state_store": runtime.store.ping, **runtime.readiness_checks}
        results = await asyncio.gather(*(_answers_in_time(probe) for probe in probes.values()))
        checks = dict(zip(probes, results, strict=True))
        checks["signing_keys"] = len(runtime.verifier.jwks.key_set.keys) > 0
        failed = sorted(name for name, passed in checks.items() if not passed)
        body: dict[str, Any] = {"status": "unavailable" if failed else "ok", "checks": checks}
        if failed:
            body["failed"] = failed
            # A load balancer or client polling readiness may come back then.
            return Response(body, status_code=503, headers={"Retry-After": "2"})
        return Response(body, status_code=200)

    @operation("GET", "/metrics", operation_id="getMetrics", summary="Prometheus metrics", public=True)
    async def metrics() -> Response[bytes]:
        if not settings.metrics_public:
            # Off (production's default): the counters say who calls what and how often.
            raise ProblemError("not-found", "Metrics are not served here.")
        await refresh_before_scrape()
        return Response(render_metrics(), media_type=CONTENT_TYPE_LATEST)

    @operation("GET", "/problems", operation_id="listProblems", summary="Problem types", public=True)
    async def problems() -> Response[str]:
        items = "".join(
            f"<li><a href='{k.type_uri}'>{html.escape(k.title)}</a> ({k.status}, <code>{k.code}</code>)</li>"
            for k in PROBLEM_KINDS.values()
        )
        return Response(
            f"<!doctype html><h1>Stratum problem types</h1><ul>{items}</ul>", media_type=MediaType.HTML
        )

    @operation(
        "GET", "/problems/{code:str}", operation_id="getProblem", summary="One problem type", public=True
    )
    async def problem(code: FromPath[str]) -> Response[str]:
        kind = PROBLEM_KINDS.get(code)
        if kind is None:
            raise ProblemError("not-found", f"No problem type {code!r}.")
        return Response(problem_doc_html(kind), media_type=MediaType.HTML)

    handlers: list[Any] = [catalogue, live, ready, metrics, problems, problem, get_reference_asset]

    if dev is not None:

        @operation(
            "POST", "/oauth/token", operation_id="issueToken", summary="Client credentials grant", public=True
        )
        async def token(request: Request[Any, Any, Any]) -> Response[Any]:
            form = {k: str(v) for k, v in (await request.form()).items()}
            client_id = _token_client_id(request.headers, form)
            # The access log names the client the request named (it has no token to take it from).
            request.scope["state"]["token_client_id"] = client_id
            # Guessing a client's secret spends that client's budget; ids that are not registered share
            # their caller's address budget, so made-up ids neither escape the limit nor fill the store.
            client_key = (
                f"client:{client_id}"
                if client_id in dev.clients
                else f"address:{request.client.host if request.client else 'unknown'}"
            )
            quota = runtime.limiter.quota("token", settings.rate_limit_token)
            decision = await runtime.limiter.hit(quota, client_key)
            if not decision.allowed:
                log.info("token_refused", client_id=client_id, error="slow_down", reason="rate limited")
                return Response(
                    {"error": "slow_down", "error_description": "too many token requests"},
                    status_code=429,
                    headers={**decision.headers, "Retry-After": str(decision.reset_seconds)},
                )
            result = dev.token_response(form, request.headers)
            if result.status != 200:
                log.info(
                    "token_refused", client_id=client_id, error=result.body.get("error"), reason=result.reason
                )
            return Response(result.body, status_code=result.status, headers=dict(result.headers))

        @operation(
            "GET",
            "/.well-known/oauth-authorization-server",
            operation_id="getOAuthMetadata",
            summary="RFC 8414 metadata",
            public=True,
        )
        async def oauth_metadata(request: Request[Any, Any, Any]) -> dict[str, Any]:
            return dev.metadata(str(request.base_url))

        @operation("GET", "/oauth/jwks", operation_id="getJwks", summary="Signing keys (JWKS)", public=True)
        async def jwks() -> dict[str, Any]:
            return dev.keys.public_jwks

        handlers += [token, oauth_metadata, jwks]

    return Litestar(
        route_handlers=handlers,
        exception_handlers=dict(exception_handlers),
        openapi_config=None,
        debug=False,
        request_max_body_size=settings.max_body_bytes,
    )


READINESS_TIMEOUT_SECONDS = 1.0


async def _answers_in_time(probe: Callable[[], Awaitable[bool]]) -> bool:
    """False for a dependency that says no, fails, or does not answer within the readiness timeout."""
    try:
        return bool(await asyncio.wait_for(probe(), READINESS_TIMEOUT_SECONDS))
    except Exception as exc:
        log.warning("readiness_check_failed", check=getattr(probe, "__qualname__", "?"), error=repr(exc))
        return False


def _token_client_id(headers: Mapping[str, str], form: Mapping[str, str]) -> str:
    """The client a token request names (Basic or form), for its rate limit. Never the secret."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            return (
                unquote(base64.b64decode(value, validate=True).decode().partition(":")[0])[:128]
                or "anonymous"
            )
        except (ValueError, UnicodeDecodeError):
            return "malformed"
    return form.get("client_id", "")[:128] or "anonymous"


def _tier_auth(
    runtime: Runtime, client_id: str, secret: str | None, token_transport: Any
) -> ClientCredentialsAuth:
    settings = runtime.settings
    if runtime.dev_server is not None:
        client = runtime.dev_server.clients.get(client_id)
        if client is None:
            raise SystemExit(f"stratum: tier client {client_id!r} is not in {settings.data_dir}/clients.json")
        secret = client.client_secret
        token_url = f"{settings.issuer}/oauth/token"
    else:
        if not secret or not settings.oauth_token_url:
            raise SystemExit(
                "stratum: with an external issuer set the tier client secrets and STRATUM_OAUTH_TOKEN_URL"
            )
        token_url = settings.oauth_token_url
        token_transport = None
    return ClientCredentialsAuth(
        token_url=token_url, client_id=client_id, client_secret=secret, transport=token_transport
    )


def build_gateway(
    settings: Settings | None = None,
    *,
    tiers: Sequence[str] = ALL_TIERS,
    run_workflows: bool | None = None,
) -> Gateway:
    """The whole system, wired. ``tiers`` picks which tier apps this process serves; ``run_workflows``
    overrides ``workflows.run_in_process`` (``stratum worker`` sets it)."""
    from experience_apis.app import EXPERIENCE_V1, create_experience_app
    from experience_apis.client import ExperienceClients
    from process_apis.app import PROCESS_V1, create_process_app
    from process_apis.client import ProcessApiClient
    from system_apis.app import SYSTEM_V1, create_system_app
    from system_apis.bootstrap import build_adapters
    from system_apis.client import SystemApiClient

    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.log_format)
    runtime = Runtime(settings)
    mounts: list[Mount] = []

    sandboxes = build_sandbox_mounts(settings) if settings.mount_sandboxes else {}
    mounts += [Mount(prefix, app, strip_prefix=True) for prefix, app in sandboxes.items()]

    specs = {"system": SYSTEM_V1, "process": PROCESS_V1, "experience": EXPERIENCE_V1}
    served = [specs[t] for t in ALL_TIERS if t in tiers]
    root = _root_app(runtime, served)
    cap = settings.max_body_bytes
    token_transport = httpx.ASGITransport(app=Edge(root, max_body_bytes=cap)) if runtime.dev_server else None
    apps: dict[str, ASGIApp] = {}

    def tier_app(name: str, url: str | None) -> tuple[str, ASGIApp | None]:
        """Where a tier client calls the tier: its URL, or its app (behind its own edge) in this process."""
        if url:
            return url, None
        if name not in apps:
            raise SystemExit(f"stratum: the {name} tier is not served here; set STRATUM_{name.upper()}_URL")
        return f"http://{name}.stratum.internal", Edge(apps[name], max_body_bytes=cap)

    if "system" in tiers:
        adapters = build_adapters(settings, sandboxes)
        for closer in adapters.closers:
            runtime.on_close(closer)
        for starter in adapters.starters:
            runtime.on_start(starter)
        apps["system"] = create_system_app(runtime, adapters=adapters)

    def system_client(client_id: str, secret: str | None) -> SystemApiClient:
        base_url, app = tier_app("system", settings.system_url)
        client = SystemApiClient(
            base_url=base_url,
            app=app,
            timeout=settings.inter_tier_timeout_seconds,
            auth=_tier_auth(runtime, client_id, secret, token_transport),
        )
        runtime.on_close(client.aclose)
        return client

    if "process" in tiers:
        creds = settings.process_client
        apps["process"] = create_process_app(
            runtime, system=system_client(creds.client_id, creds.client_secret), run_workers=run_workflows
        )

    if "experience" in tiers:
        creds = settings.experience_client
        base_url, app = tier_app("process", settings.process_url)
        process = ProcessApiClient(
            base_url=base_url,
            app=app,
            timeout=settings.inter_tier_timeout_seconds,
            auth=_tier_auth(runtime, creds.client_id, creds.client_secret, token_transport),
        )
        runtime.on_close(process.aclose)
        clients = ExperienceClients(
            system=system_client(creds.client_id, creds.client_secret), process=process
        )
        apps["experience"] = create_experience_app(runtime, clients=clients)

    mounts += [Mount(f"/{name}", app) for name, app in apps.items()]
    route_library_logs()  # each Litestar app just built took the root logger over with plain text
    return Gateway(runtime, root, mounts)


def build_sandbox_mounts(settings: Settings) -> dict[str, ASGIApp]:
    """The vendor sandboxes, mounted under /sandboxes/{vendor} (and used in process by the adapters)."""
    from sandboxes.adaptive import create_adaptive_sandbox
    from sandboxes.anaplan import AnaplanSandboxSettings, create_anaplan_sandbox
    from sandboxes.business_central import BusinessCentralSandboxSettings, create_business_central_sandbox
    from sandboxes.kantata import KantataSandboxSettings, create_kantata_sandbox
    from sandboxes.netsuite import create_netsuite_sandbox
    from sandboxes.persistence import SandboxStateError, persist_sandbox
    from sandboxes.salesforce import SalesforceSandboxSettings, create_salesforce_sandbox

    salesforce = SalesforceSandboxSettings(daily_api_limit=settings.sandbox_salesforce_daily_api_limit)
    apps = {
        "salesforce": create_salesforce_sandbox(salesforce),
        "kantata": create_kantata_sandbox(
            KantataSandboxSettings(requests_per_second=settings.sandbox_kantata_requests_per_second)
        ),
        "netsuite": create_netsuite_sandbox(),
        # Its webhooks go out over HTTP, as Business Central's do: to the notification URL a subscription
        # names (the gateway's own public URL, in the demo).
        "business_central": create_business_central_sandbox(
            BusinessCentralSandboxSettings(
                notification_transport=httpx.AsyncHTTPTransport(),
                rate_limit_requests=settings.sandbox_business_central_requests_per_window,
            )
        ),
        # Its tasks complete on the first status read: the embedded sandbox does the work at once anyway.
        "anaplan": create_anaplan_sandbox(
            AnaplanSandboxSettings(
                task_polls_to_complete=1, requests_per_minute=settings.sandbox_anaplan_requests_per_minute
            )
        ),
        "adaptive": create_adaptive_sandbox(),
    }
    # Their records live in the data directory next to the workflow runs that point at them, so a
    # restart finds both (sandboxes/persistence.py); `stratum demo reset` starts both over.
    try:
        for vendor, app in apps.items():
            persist_sandbox(app, settings.data_dir, vendor)
    except SandboxStateError as exc:
        raise SystemExit(f"stratum: {exc}; `stratum demo reset` starts the demo over") from exc
    except OSError as exc:
        where = settings.data_dir
        raise SystemExit(f"stratum: the sandboxes cannot keep their records in {where}: {exc}") from exc
    return {f"/sandboxes/{vendor.replace('_', '-')}": app for vendor, app in apps.items()}


def create_app() -> ASGIApp:
    """For ASGI servers (``uvicorn --factory apis.gateway:create_app``); settings from the environment."""
    import os

    from apis.profile import production_violations, refusal_message

    tiers = [t for t in os.environ.get("STRATUM_TIERS", ",".join(ALL_TIERS)).split(",") if t]
    settings = load_settings()
    # `stratum serve` checks this before it binds; an ASGI server started by hand gets the same refusal.
    violations = production_violations(settings, tiers)
    if violations:
        raise SystemExit(refusal_message(violations))
    gateway = build_gateway(settings, tiers=tiers)
    gateway.freeze_after_start = True
    return Edge(gateway, max_body_bytes=settings.max_body_bytes)
