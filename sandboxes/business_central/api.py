"""The API v2.0 routes: ``/v2.0/{tenant}/{environment}/api/v2.0/...``. Business Central's URLs are OData
paths (``companies({id})/salesInvoices({id})/salesInvoiceLines``), so there is one route per HTTP method;
each resolves the path (`urls`) and hands the request to what it names: ``$metadata`` (`metadata`),
``$batch`` (`batch`), ``subscriptions`` (`subscriptions`), or an entity set, whose rules live in its
resource module (`companies`, `customers`, `projects`, `sales_invoices` with its lines and the bound actions
``Microsoft.NAV.post``, ``cancel`` and ``makeCorrectiveCreditMemo``, `sales_credit_memos`,
`customer_payments`, `tax_areas`)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, patch, post
from litestar.params import FromPath

from sandboxes.business_central.batch import batch
from sandboxes.business_central.companies import COMPANIES
from sandboxes.business_central.data import ENVIRONMENT, TENANT_ID
from sandboxes.business_central.entities import copy_record
from sandboxes.business_central.errors import BusinessCentralError, bad_request, not_found
from sandboxes.business_central.metadata import metadata_response
from sandboxes.business_central.sales_credit_memos import SALES_CREDIT_MEMOS
from sandboxes.business_central.sales_invoices import (
    SALES_INVOICE_LINES,
    SALES_INVOICES,
    add_line,
    cancel,
    make_corrective_credit_memo,
)
from sandboxes.business_central.sales_invoices import post as post_invoice
from sandboxes.business_central.sandbox import BusinessCentralSandbox, SandboxDependency
from sandboxes.business_central.subscriptions import (
    is_subscriptions,
    read_subscriptions,
    renew_subscription,
    subscribe,
    unsubscribe,
)
from sandboxes.business_central.urls import API_PATH, resolve_target
from sandboxes.business_central.wire import (
    ODATA_HEADERS,
    context_url,
    count_response,
    if_match,
    json_response,
    page,
    parse_query,
    query_params,
    read_body,
    request_url,
    select_expand,
)

__all__ = ["api_root", "create", "read", "remove", "update"]


def api_root(tenant: str = TENANT_ID, environment: str = ENVIRONMENT) -> str:
    """The API's path below the sandbox root: ``/v2.0/{tenant}/{environment}/api/v2.0``."""
    return f"/v2.0/{tenant}/{environment}/api/v2.0"


def check_environment(sandbox: BusinessCentralSandbox, tenant: str, environment: str) -> None:
    if tenant.lower() != sandbox.settings.tenant_id.lower():
        raise BusinessCentralError(
            401, "Authentication_InvalidCredentials", "The server has rejected the client credentials."
        )
    if environment != sandbox.settings.environment:
        # Unverified: the code for an environment the tenant does not have.
        raise BusinessCentralError(404, "NoEnvironment", f"The environment '{environment}' does not exist.")


@get(f"{API_PATH}/{{rest:path}}")
async def read(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    environment: FromPath[str],
    rest: FromPath[str],
    sandbox: SandboxDependency,
) -> Response[bytes]:
    check_environment(sandbox, tenant, environment)
    if is_subscriptions(rest):
        return read_subscriptions(request, sandbox, rest)
    if rest.strip("/") == "$metadata":
        return metadata_response()
    target = resolve_target(rest, sandbox)
    query = parse_query(query_params(request))
    if target.company_id is None:
        rows = sandbox.select(COMPANIES, list(sandbox.records["companies"].values()), None, query)
        if target.count:
            return count_response(rows)
        return page(request, sandbox, COMPANIES, rows, None, query, context_url(request, "companies"))
    company, setup = sandbox.company(target.company_id)
    scope = f"companies({company['id']})"
    if target.entity_set is None:
        if target.count:
            raise bad_request("Bad Request - Error in query syntax.")
        select, _ = select_expand(COMPANIES, query)
        body = {
            "@odata.context": context_url(request, "companies/$entity"),
            **sandbox.render(COMPANIES, company, None, select),
        }
        return json_response(body)
    entity_set = target.entity_set
    if target.entity_id is None:
        rows = sandbox.select(entity_set, sandbox.entities(entity_set, target.company_id), setup, query)
        if target.count:
            return count_response(rows)
        return page(
            request,
            sandbox,
            entity_set,
            rows,
            setup,
            query,
            context_url(request, f"{scope}/{entity_set.name}"),
        )
    entity = sandbox.find(entity_set, target.company_id, target.entity_id)
    if target.lines:
        lines = entity["salesInvoiceLines"]
        if target.line_id is not None:
            line = next((line for line in lines if line["id"] == target.line_id), None)
            if line is None:
                raise not_found("salesInvoiceLine")
            select, _ = select_expand(SALES_INVOICE_LINES, query)
            context = context_url(request, f"{scope}/salesInvoices({entity['id']})/salesInvoiceLines/$entity")
            return json_response(
                {"@odata.context": context, **sandbox.render(SALES_INVOICE_LINES, line, setup, select)}
            )
        rows = sandbox.select(SALES_INVOICE_LINES, list(lines), setup, query)
        if target.count:
            return count_response(rows)
        context = context_url(request, f"{scope}/salesInvoices({entity['id']})/salesInvoiceLines")
        return page(request, sandbox, SALES_INVOICE_LINES, rows, setup, query, context)
    if target.count:
        raise bad_request("Bad Request - Error in query syntax.")
    select, expand = select_expand(entity_set, query)
    context = context_url(request, f"{scope}/{entity_set.name}/$entity")
    return json_response(
        {"@odata.context": context, **sandbox.render(entity_set, entity, setup, select, expand)}
    )


@post(f"{API_PATH}/{{rest:path}}", status_code=201)
async def create(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    environment: FromPath[str],
    rest: FromPath[str],
    sandbox: SandboxDependency,
) -> Response[bytes]:
    check_environment(sandbox, tenant, environment)
    if rest.strip("/") == "$batch":
        return await batch(request, sandbox)
    if is_subscriptions(rest):
        return await subscribe(request, sandbox, rest)
    target = resolve_target(rest, sandbox)
    if target.company_id is None or target.entity_set is None or target.count or target.line_id is not None:
        raise BusinessCentralError(
            405,
            "BadRequest_MethodNotAllowed",
            "'POST' requests for this resource are not allowed within Dynamics 365 Business Central OData "
            "web services.",
        )
    _, setup = sandbox.company(target.company_id)
    entity_set = target.entity_set
    base = request_url(request)
    if target.action is not None:
        # Bound actions answer 204 without a body (the page sets the action context's result code).
        assert target.entity_id is not None
        invoice = sandbox.find(SALES_INVOICES, target.company_id, target.entity_id)
        scope = f"companies({target.company_id})"
        if target.action == "post":
            post_invoice(sandbox, invoice)
        elif target.action == "cancel":
            memo = cancel(sandbox, invoice)
            sandbox.webhooks.changed(f"{scope}/{SALES_CREDIT_MEMOS.name}", memo["id"], "created")
        else:
            memo = make_corrective_credit_memo(sandbox, invoice)
            sandbox.webhooks.changed(f"{scope}/{SALES_CREDIT_MEMOS.name}", memo["id"], "created")
            return Response(b"", status_code=204, headers=ODATA_HEADERS)
        sandbox.webhooks.changed(f"{scope}/salesInvoices", invoice["id"], "updated")
        return Response(b"", status_code=204, headers=ODATA_HEADERS)
    if target.entity_id is not None and not target.lines:
        raise BusinessCentralError(
            405,
            "BadRequest_MethodNotAllowed",
            f"'POST' requests for '{entity_set.name}' of EdmType 'Entity' are not allowed.",
        )
    body = await read_body(request)
    scope = f"companies({target.company_id})"
    if target.lines:
        assert target.entity_id is not None
        invoice = copy_record(sandbox.find(SALES_INVOICES, target.company_id, target.entity_id))
        line = add_line(sandbox, invoice, setup, body)
        sandbox.records["salesInvoices"][invoice["id"]] = invoice
        sandbox.webhooks.changed(f"{scope}/salesInvoices", invoice["id"], "updated")
        context = context_url(request, f"{scope}/salesInvoices({invoice['id']})/salesInvoiceLines/$entity")
        rendered = {"@odata.context": context, **sandbox.render(SALES_INVOICE_LINES, line, setup)}
        return json_response(rendered, 201, {"Location": f"{base}({line['id']})"})
    entity = sandbox.create(entity_set, target.company_id, setup, body)
    sandbox.webhooks.changed(f"{scope}/{entity_set.name}", entity["id"], "created")
    context = context_url(request, f"{scope}/{entity_set.name}/$entity")
    expand = isinstance(body, dict) and any(name in body for name in entity_set.navigation)
    rendered = {"@odata.context": context, **sandbox.render(entity_set, entity, setup, None, expand)}
    return json_response(rendered, 201, {"Location": f"{base}({entity['id']})"})


@patch(f"{API_PATH}/{{rest:path}}", status_code=200)
async def update(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    environment: FromPath[str],
    rest: FromPath[str],
    sandbox: SandboxDependency,
) -> Response[bytes]:
    check_environment(sandbox, tenant, environment)
    if is_subscriptions(rest):
        return await renew_subscription(request, sandbox, rest)
    target = resolve_target(rest, sandbox)
    if (
        target.company_id is None
        or target.entity_set is None
        or target.entity_id is None
        or target.count
        or target.lines
        or target.action
    ):
        raise BusinessCentralError(
            405, "BadRequest_MethodNotAllowed", "'PATCH' requests for this resource are not allowed."
        )
    _, setup = sandbox.company(target.company_id)
    entity = sandbox.find(target.entity_set, target.company_id, target.entity_id)
    if_match(request, sandbox, entity)
    body = await read_body(request)
    changed = sandbox.update(target.entity_set, target.company_id, setup, entity, body)
    sandbox.webhooks.changed(
        f"companies({target.company_id})/{target.entity_set.name}", changed["id"], "updated"
    )
    context = context_url(request, f"companies({target.company_id})/{target.entity_set.name}/$entity")
    return json_response({"@odata.context": context, **sandbox.render(target.entity_set, changed, setup)})


@delete(f"{API_PATH}/{{rest:path}}", status_code=200)
async def remove(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    environment: FromPath[str],
    rest: FromPath[str],
    sandbox: SandboxDependency,
) -> Response[bytes]:
    check_environment(sandbox, tenant, environment)
    if is_subscriptions(rest):
        return unsubscribe(request, sandbox, rest)
    target = resolve_target(rest, sandbox)
    if (
        target.company_id is None
        or target.entity_set is None
        or target.entity_id is None
        or target.count
        or target.lines
        or target.action
    ):
        raise BusinessCentralError(
            405, "BadRequest_MethodNotAllowed", "'DELETE' requests for this resource are not allowed."
        )
    entity = sandbox.find(target.entity_set, target.company_id, target.entity_id)
    if_match(request, sandbox, entity)
    sandbox.delete(target.entity_set, target.company_id, entity)
    sandbox.webhooks.changed(
        f"companies({target.company_id})/{target.entity_set.name}", entity["id"], "deleted"
    )
    return Response(b"", status_code=204, headers=ODATA_HEADERS)
