"""Billing over HTTP: portfolio (filters, CSV), delegation and transfer
actions, quotes, orders, card checkout and its webhook, payments,
invoices (PDF), the renewal schedule. Handlers parse, call billing's
services and render; the rights and step-up rules are the zone API's."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from billing import invoices, orders, payments, pdf, portfolio, renewals, stats
from billing.errors import WebhookRejected
from billing.provider import SIGNATURE_HEADER
from storage.models import Account, Right
from storage.models.billing import DomainStatus, OrderStatus
from zoneapi.access import actor_of, require_active
from zoneapi.auth import Principal, principal_of
from zoneapi.endpoints import Auth, QueryParam, Routes, body_of
from zoneapi.errors import ApiError, BadRequest, Forbidden, NotFound
from zoneapi.jsonio import (
    as_object,
    get_bool,
    get_str,
    json_response,
    obj_list,
    opt_int,
    opt_str,
    str_list,
)
from zoneapi.keys import CONTEXT
from zoneapi.paging import query_text
from zoneapi.policy import SensitiveKind
from zoneapi.routes.billing_common import (
    BILLING,
    BillingRuntime,
    billing_errors,
    domain_access,
    refuse_narrowed_token,
    require_domain_sensitive,
    require_manager,
    runtime,
    today,
    visible_names,
)
from zoneapi.schema import array, boolean, integer, obj, open_object, string

routes = Routes("billing")
CSV = "text/csv"

ITEM = obj({
    "kind": string(32, enum=tuple(k.value for k in orders.ItemKind)),
    "domain": string(253, min_length=1),
    "years": integer(1, orders.MAX_YEARS),
    "product": string(64),
    "auth_code": string(128),
}, required=("kind", "domain"))
ORDER_BODY = obj({"items": array(ITEM, orders.MAX_ITEMS, min_items=1),
                  "dry_run": boolean("price without ordering")}, required=("items",))
QUOTE_BODY = obj({"items": array(ITEM, orders.MAX_ITEMS, min_items=1),
                  "country": string(2, min_length=2), "vat_number": string(32, nullable=True),
                  "language": string(2, enum=("en", "fr"))}, required=("items", "country"))
NAMESERVERS_BODY = obj({"nameservers": array(obj({
    "host": string(253, min_length=1), "addresses": array(string(45), 16),
}, required=("host",)), 13)}, required=("nameservers",))
LOCK_BODY = obj({"locked": boolean()}, required=("locked",))
CHECKOUT_BODY = obj({"idempotency_key": string(128, min_length=8)})
SELECTION_BODY = obj({"selections": array(obj({
    "kind": string(16, enum=tuple(k.value for k in renewals.EntryKind)),
    "id": integer(1), "action": string(16, enum=tuple(a.value for a in renewals.Action)),
}, required=("kind", "id", "action")), 500, min_items=1)}, required=("selections",))

DOMAIN_QUERY = (
    QueryParam("status", string(16, enum=tuple(s.value for s in DomainStatus))),
    QueryParam("extension", string(63)), QueryParam("unit", string(20)),
    QueryParam("expires_before", string(10, description="YYYY-MM-DD")),
    QueryParam("q", string(253, description="part of the name")),
    QueryParam("format", string(8, enum=("json", "csv"))),
)


def _date(text: str | None, name: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest("invalid_query", f"{name} must be YYYY-MM-DD") from None


def _domain_json(v: portfolio.DomainView) -> dict[str, Any]:
    def contact(c: portfolio.ContactInfo | None) -> dict[str, Any] | None:
        return None if c is None else {"id": c.id, "name": c.name, "email": c.email,
                                       "organisation": c.organisation}

    return {
        "name": v.name, "extension": v.extension, "plan": v.plan, "status": v.status.value,
        "expires_on": v.expires_on.isoformat(), "profile": v.profile, "hosted": v.hosted,
        "zone_status": v.zone_status.value if v.zone_status else None,
        "owner": contact(v.owner), "admin": contact(v.admin), "billing": contact(v.billing),
        "business_unit": {"id": v.business_unit_id, "name": v.business_unit}
        if v.business_unit_id else None,
        "locked": v.locked, "nameservers": list(v.nameservers),
        "cancel_at_term": v.cancel_at_term,
        "options": [{"id": o.id, "product": o.product, "status": o.status.value,
                     "expires_on": o.expires_on.isoformat(), "cancel_at_term": o.cancel_at_term}
                    for o in v.options],
        "offer": v.offer.value, "renew_cents": v.renew_cents,
        "restore_fee_cents": v.restore_fee_cents,
    }


def _order_json(v: orders.OrderView) -> dict[str, Any]:
    return {
        "number": v.number, "status": v.status.value, "currency": v.currency,
        "subtotal_cents": v.subtotal_cents, "vat_cents": v.vat_cents,
        "total_cents": v.total_cents, "vat_rate_bp": v.vat_rate_bp,
        "reverse_charge": v.reverse_charge, "created_at": v.created_at,
        "paid_at": v.paid_at,
        "lines": [{"position": ln.position, "kind": ln.kind, "domain": ln.domain,
                   "years": ln.years, "unit_cents": ln.unit_cents,
                   "amount_cents": ln.amount_cents, "description": ln.description,
                   "done": ln.done} for ln in v.lines],
    }


def _quote_json(q: orders.Quote) -> dict[str, Any]:
    return {
        "currency": q.currency, "subtotal_cents": q.subtotal_cents, "vat_cents": q.vat_cents,
        "total_cents": q.total_cents, "vat_rate_bp": q.vat.rate_bp,
        "vat_treatment": q.vat.treatment.value,
        "lines": [{"kind": ln.kind.value, "domain": ln.domain.rstrip("."), "years": ln.years,
                   "unit_cents": ln.unit_cents, "amount_cents": ln.amount_cents,
                   "description": ln.description} for ln in q.lines],
    }


def _items(body: dict[str, Any]) -> list[orders.OrderItem]:
    items = []
    for item in obj_list(body, "items"):
        params: dict[str, Any] = {}
        if opt_str(item, "auth_code"):
            params["auth_code"] = opt_str(item, "auth_code")
        items.append(orders.OrderItem(
            orders.ItemKind(get_str(item, "kind")), get_str(item, "domain"),
            years=opt_int(item, "years") or 1, product=opt_str(item, "product"), params=params,
        ))
    return items


# -- portfolio ---------------------------------------------------------------


@routes.get("/billing/domains", summary="The portfolio, with filters (CSV with format=csv)",
            query=DOMAIN_QUERY, other_media=(CSV,))
async def list_domains(request: web.Request) -> web.StreamResponse:
    ctx, rt, principal = request.app[CONTEXT], runtime(request), principal_of(request)
    status = query_text(request, "status")
    unit = query_text(request, "unit")
    if status is not None and status not in {s.value for s in DomainStatus}:
        raise BadRequest("invalid_query", "unknown status")
    if unit is not None and (not unit.isdigit() or len(unit) > 18):
        raise BadRequest("invalid_query", "unit must be a business unit id")
    expires_before = _date(query_text(request, "expires_before"), "expires_before")
    async with ctx.db.read() as session:
        filters = portfolio.PortfolioFilter(
            status=DomainStatus(status) if status else None,
            extension=query_text(request, "extension"),
            business_unit_id=int(unit) if unit else None, expires_before=expires_before,
            search=query_text(request, "q"), names=await visible_names(session, principal),
            include_deleted=status == DomainStatus.DELETED.value,
        )
        views = await portfolio.list_domains(session, rt.config, principal.account_id, filters,
                                             today(ctx))
        account = await session.get(Account, principal.account_id)
    if query_text(request, "format") == "csv":
        language = account.language if account else "en"
        return web.Response(
            text=portfolio.to_csv(views, language), content_type="text/csv", charset="utf-8",
            headers={"Content-Disposition": 'attachment; filename="domains.csv"'})
    return json_response({"domains": [_domain_json(v) for v in views]})


@routes.get("/billing/domains/{domain}", summary="One domain of the portfolio")
async def get_domain(request: web.Request) -> web.Response:
    ctx, rt, principal = request.app[CONTEXT], runtime(request), principal_of(request)
    async with ctx.db.read() as session:
        domain = await domain_access(session, principal, request.match_info["domain"],
                                     Right.VIEW)
        view = (await portfolio.views(session, rt.config, [domain], today(ctx)))[0]
    return json_response(_domain_json(view))


STATS_QUERY = (
    QueryParam("from", string(10, description="first day, YYYY-MM-DD (default: 29 days "
                                               "before `to`)")),
    QueryParam("to", string(10, description="last day, YYYY-MM-DD (default: today, UTC)")),
    QueryParam("format", string(8, enum=("json", "csv"))),
)


@routes.get("/billing/domains/{domain}/stats", query=STATS_QUERY, other_media=(CSV,),
            summary="Queries answered for the domain, by day, type and rcode (CSV with "
                    "format=csv)")
async def domain_stats(request: web.Request) -> web.Response:
    ctx, principal = request.app[CONTEXT], principal_of(request)
    fmt = query_text(request, "format") or "json"
    if fmt not in ("json", "csv"):
        raise BadRequest("invalid_query", "format must be json or csv")
    with billing_errors():
        since, until = stats.period(_date(query_text(request, "from"), "from"),
                                    _date(query_text(request, "to"), "to"), today(ctx))
    async with ctx.db.read() as session:
        domain = await domain_access(session, principal, request.match_info["domain"],
                                     Right.VIEW)
        found = await stats.domain_stats(session, domain.name, since, until)
    if fmt == "csv":
        return web.Response(
            text=stats.to_csv(found), content_type="text/csv", charset="utf-8",
            headers={"Content-Disposition":
                     f'attachment; filename="{found.domain}-queries.csv"'})
    return json_response({
        "domain": found.domain, "from": since.isoformat(), "to": until.isoformat(),
        "total": found.total,
        "days": [{"day": d.isoformat(), "queries": n} for d, n in found.per_day()],
        "by_qtype": found.by_qtype(), "by_rcode": found.by_rcode(),
        "rows": [{"day": r.day.isoformat(), "qtype": r.qtype, "rcode": r.rcode,
                  "queries": r.queries} for r in found.rows],
    })


@routes.put("/billing/domains/{domain}/nameservers", body=NAMESERVERS_BODY,
            responses={202: open_object("submitted to the registry")},
            summary="Change the delegation (sensitive; [] for the platform's name servers)")
async def set_nameservers(request: web.Request) -> web.Response:
    ctx, rt, principal = request.app[CONTEXT], runtime(request), principal_of(request)
    body = as_object(body_of(request))
    require_active(principal)
    async with ctx.db.write() as session:
        domain = await domain_access(session, principal, request.match_info["domain"],
                                     Right.EDIT_NAMESERVERS, for_update=True)
        await require_domain_sensitive(session, ctx, principal, SensitiveKind.EDIT_NAMESERVERS,
                                       domain)
        with billing_errors():
            wanted = portfolio.parse_nameservers(domain.name, [
                (get_str(n, "host"), str_list(n, "addresses") or [])
                for n in obj_list(body, "nameservers")])
            effective = await portfolio.change_nameservers(
                session, rt.config, rt.gateway, domain, wanted, actor_of(principal))
    return json_response({"nameservers": [h.rstrip(".") for h in effective],
                          "status": "submitted"}, status=202)


@routes.put("/billing/domains/{domain}/lock", body=LOCK_BODY,
            summary="Lock or unlock the domain for transfer (sensitive)")
async def set_lock(request: web.Request) -> web.Response:
    ctx, rt, principal = request.app[CONTEXT], runtime(request), principal_of(request)
    locked = get_bool(as_object(body_of(request)), "locked", True)
    require_active(principal)
    async with ctx.db.write() as session:
        domain = await domain_access(session, principal, request.match_info["domain"],
                                     Right.TRANSFER, for_update=True)
        await require_domain_sensitive(session, ctx, principal, SensitiveKind.TRANSFER, domain)
        changed = await portfolio.set_lock(session, rt.gateway, domain, locked,
                                           actor_of(principal))
    return json_response({"locked": locked, "changed": changed})


@routes.post("/billing/domains/{domain}/transfer-code",
             responses={200: open_object("the code"),
                        202: open_object("requested from the registry")},
             summary="Reveal the transfer code (sensitive, audited), or request it")
async def transfer_code(request: web.Request) -> web.Response:
    ctx, rt, principal = request.app[CONTEXT], runtime(request), principal_of(request)
    require_active(principal)
    async with ctx.db.write() as session:
        domain = await domain_access(session, principal, request.match_info["domain"],
                                     Right.TRANSFER)
        await require_domain_sensitive(session, ctx, principal, SensitiveKind.TRANSFER, domain)
        with billing_errors():
            code = await portfolio.reveal_transfer_code(session, rt.config, rt.gateway, domain,
                                                        actor_of(principal))
    if code is None:
        return json_response({"status": "requested"}, status=202)
    return json_response({"transfer_code": code}, headers={"Cache-Control": "no-store"})


# -- prices, quotes, orders ---------------------------------------------------


@routes.post("/billing/quote", auth=Auth.NONE, body=QUOTE_BODY,
             summary="A visitor's quote (registrations and transfers, default prices)")
async def visitor_quote(request: web.Request) -> web.Response:
    ctx, rt = request.app[CONTEXT], runtime(request)
    body = as_object(body_of(request))
    buyer = orders.Buyer(get_str(body, "country").upper(), opt_str(body, "vat_number"),
                         get_str(body, "language", "en"))
    async with ctx.db.read() as session:
        with billing_errors():
            quote = await orders.quote(session, rt.config, None, _items(body), buyer,
                                       today(ctx))
    return json_response(_quote_json(quote))


def _right_for(item: orders.OrderItem) -> Right | None:
    if item.kind in (orders.ItemKind.REGISTER, orders.ItemKind.TRANSFER_IN):
        return None  # account-wide: managers only
    return Right.RENEW


@routes.post("/billing/orders", body=ORDER_BODY,
             responses={200: open_object("the quote, with dry_run"), 201: open_object()},
             summary="Order (or price, with dry_run) renewals, restores, options, registrations")
async def create_order(request: web.Request) -> web.Response:
    ctx, rt, principal = request.app[CONTEXT], runtime(request), principal_of(request)
    body = as_object(body_of(request))
    try:
        items = _items(body)
    except ValueError as exc:
        raise BadRequest("invalid_request", str(exc)) from None
    if any(i.kind is orders.ItemKind.OWNER_CHANGE for i in items):
        raise Forbidden("operator_only", "a change of owner is requested from support")
    require_active(principal)
    async with ctx.db.write() as session:
        for item in items:
            right = _right_for(item)
            if right is None:
                require_manager(principal, "registering or transferring in a domain")
            else:
                await domain_access(session, principal, item.domain, right)
        account = await session.get(Account, principal.account_id)
        assert account is not None
        with billing_errors():
            if get_bool(body, "dry_run"):
                quote = await orders.quote(session, rt.config, principal.account_id, items,
                                           orders.buyer_of(account), today(ctx))
                return json_response(_quote_json(quote))
            order = await orders.create_order(session, rt.config, principal.account_id, items,
                                              actor_of(principal), today(ctx))
            view = await orders.view(session, order)
    return json_response(_order_json(view), status=201)


@routes.get("/billing/orders", summary="Orders, newest first",
            query=(QueryParam("status", string(16, enum=tuple(s.value for s in OrderStatus))),))
async def list_orders(request: web.Request) -> web.Response:
    ctx, principal = request.app[CONTEXT], principal_of(request)
    status = query_text(request, "status")
    if status is not None and status not in {s.value for s in OrderStatus}:
        raise BadRequest("invalid_query", "unknown status")
    async with ctx.db.read() as session:
        names = await visible_names(session, principal)
        views = await orders.list_orders(session, principal.account_id,
                                         status=OrderStatus(status) if status else None,
                                         names=names)
    return json_response({"orders": [_order_json(v) for v in views]})


async def _my_order(request: web.Request, right: Right) -> tuple[orders.OrderView, Any]:
    ctx, principal = request.app[CONTEXT], principal_of(request)
    if right is not Right.VIEW:
        refuse_narrowed_token(principal, f"{right.value} on an order")
    async with ctx.db.read() as session:
        try:
            order = await orders.find_order(session, request.match_info["number"],
                                            account_id=principal.account_id)
        except orders.OrderNotFound:
            raise NotFound("order not found", code="order_not_found") from None
        view = await orders.view(session, order)
        names = await visible_names(session, principal, right)
        domains = {f"{ln.domain}." for ln in view.lines}
        if names is not None and not (domains and domains <= names):
            raise NotFound("order not found", code="order_not_found")
        account = await session.get(Account, order.account_id)
        return view, (order, account)


@routes.get("/billing/orders/{number}", summary="One order and its lines")
async def get_order(request: web.Request) -> web.Response:
    view, _ = await _my_order(request, Right.VIEW)
    return json_response(_order_json(view))


@routes.post("/billing/orders/{number}/cancel", summary="Cancel an unpaid order")
async def cancel_order(request: web.Request) -> web.Response:
    ctx, principal = request.app[CONTEXT], principal_of(request)
    require_active(principal)
    view, _ = await _my_order(request, Right.RENEW)
    async with ctx.db.write() as session:
        with billing_errors():
            order = await orders.find_order(session, view.number, for_update=True)
            await orders.cancel_order(session, order, actor_of(principal))
    return json_response({"number": view.number, "status": OrderStatus.CANCELLED.value})


@routes.get("/billing/orders/{number}/proforma.pdf", response_media="application/pdf",
            summary="The pro-forma PDF of an unpaid order")
async def proforma(request: web.Request) -> web.Response:
    ctx, rt = request.app[CONTEXT], runtime(request)
    view, (order, account) = await _my_order(request, Right.VIEW)
    if view.status is not OrderStatus.PENDING_PAYMENT:
        raise ApiError(409, "not_pending", f"order {view.number} is {view.status.value}")
    data = pdf.proforma_pdf(view, invoices.seller_snapshot(rt.config),
                            invoices.buyer_snapshot(account, order), today(ctx))
    return _pdf(data, f"proforma-{view.number}.pdf")


def _pdf(data: bytes, filename: str) -> web.Response:
    return web.Response(body=data, content_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# -- payments -------------------------------------------------------------------


@routes.post("/billing/orders/{number}/checkout", body=CHECKOUT_BODY, errors=(502, 503),
             summary="Pay an order by card: returns the provider's hosted page")
async def checkout(request: web.Request) -> web.Response:
    ctx, rt, principal = request.app[CONTEXT], runtime(request), principal_of(request)
    require_active(principal)
    view, _ = await _my_order(request, Right.RENEW)  # rights first: 404 means 404
    if rt.provider is None:
        raise ApiError(503, "card_unavailable", "card payment is not configured")
    with billing_errors():
        result = await payments.start_card_payment(
            ctx.db, rt.config, rt.provider, order_number=view.number,
            account_id=principal.account_id, actor=actor_of(principal), today=today(ctx),
            idempotency_key=opt_str(as_object(body_of(request)), "idempotency_key"))
    return json_response({"order": result.order_number, "checkout_id": result.checkout_id,
                          "url": result.url})


@routes.post("/billing/payments/webhook", auth=Auth.NONE, errors=(503,),
             summary="The payment provider's signed notification")
async def webhook(request: web.Request) -> web.Response:
    ctx, rt = request.app[CONTEXT], runtime(request)
    if rt.provider is None:
        raise ApiError(503, "card_unavailable", "card payment is not configured")
    body = await request.content.read(64 * 1024 + 1)
    try:
        result = await payments.handle_webhook(
            ctx.db, rt.config, rt.provider, rt.gateway, body=body,
            signature=request.headers.get(SIGNATURE_HEADER), now=ctx.clock.now(),
            today=today(ctx))
    except WebhookRejected as exc:
        raise ApiError(400, exc.code, str(exc)) from None
    return json_response({"outcome": result.outcome.value, "order": result.order_number})


@routes.get("/billing/payments", summary="Payments of the account (a plain user: of orders "
            "concerning only domains it holds view_invoices on)")
async def list_payments(request: web.Request) -> web.Response:
    ctx, principal = request.app[CONTEXT], principal_of(request)
    async with ctx.db.read() as session:
        names = await _invoice_names(session, principal)
        views = await payments.list_payments(session, principal.account_id, names=names)
    return json_response({"payments": [
        {"id": p.id, "order": p.order_number, "method": p.method.value, "status": p.status.value,
         "amount_cents": p.amount_cents, "currency": p.currency, "reference": p.reference,
         "received_on": p.received_on.isoformat() if p.received_on else None,
         "created_at": p.created_at} for p in views]})


async def _invoice_names(session: AsyncSession, principal: Principal) -> frozenset[str] | None:
    """The domains whose invoices and payments the caller reads (None: all the account's).

    Leaders and delegates read the account's. A plain user reads those of orders
    concerning only domains it holds view_invoices on: an invoice that spans
    another domain is not shown, as it would show that domain's lines. A user
    holding view_invoices nowhere gets 403 `right_missing`; a token narrowed
    by policies (records) never reads invoices.
    """
    if principal.token is not None and principal.token.narrowed:
        raise Forbidden("token_too_narrow", "a token limited to some domains cannot read invoices")
    names = await visible_names(session, principal, Right.VIEW_INVOICES)
    if names is not None and not names:
        raise Forbidden("right_missing", "you hold the right view_invoices on no domain",
                        right=Right.VIEW_INVOICES.value)
    return names


@routes.get("/billing/invoices", summary="Invoices and credit notes (a plain user: of orders "
            "concerning only domains it holds view_invoices on)")
async def list_invoices(request: web.Request) -> web.Response:
    ctx, rt, principal = request.app[CONTEXT], runtime(request), principal_of(request)
    async with ctx.db.read() as session:
        names = await _invoice_names(session, principal)
        views = await invoices.list_invoices(session, rt.config, principal.account_id,
                                             names=names)
    return json_response({"invoices": [
        {"number": i.number, "display_number": i.display_number, "kind": i.kind.value,
         "order": i.order_number, "credits": i.credited_number, "issued_on": i.issued_on.isoformat(),
         "currency": i.currency, "subtotal_cents": i.subtotal_cents, "vat_cents": i.vat_cents,
         "total_cents": i.total_cents,
         "pdf": f"/api/v1/billing/invoices/{i.number}/pdf"} for i in views]})


@routes.get("/billing/invoices/{number}/pdf", response_media="application/pdf",
            summary="An invoice or credit note as PDF")
async def invoice_pdf(request: web.Request) -> web.Response:
    ctx, rt, principal = request.app[CONTEXT], runtime(request), principal_of(request)
    text = request.match_info["number"]
    async with ctx.db.read() as session:
        names = await _invoice_names(session, principal)
        if not (text.isascii() and text.isdigit()) or len(text) > 12:
            raise NotFound("invoice not found", code="invoice_not_found")
        try:
            invoice = await invoices.find_invoice(session, int(text),
                                                  account_id=principal.account_id, names=names)
        except invoices.InvoiceNotFound:
            raise NotFound("invoice not found", code="invoice_not_found") from None
        view = await invoices.to_view(session, rt.config, invoice)
    return _pdf(pdf.invoice_pdf(view), f"{view.display_number}.pdf")


# -- renewal schedule -----------------------------------------------------------


def _entry_json(e: renewals.ScheduleEntry) -> dict[str, Any]:
    return {"kind": e.kind.value, "id": e.id, "domain": e.domain, "product": e.product,
            "expires_on": e.expires_on.isoformat(), "status": e.status, "offer": e.offer.value,
            "price_cents": e.price_cents, "cancel_at_term": e.cancel_at_term}


@routes.get("/billing/renewals", summary="Subscriptions coming to term")
async def renewal_schedule(request: web.Request) -> web.Response:
    ctx, rt, principal = request.app[CONTEXT], runtime(request), principal_of(request)
    async with ctx.db.read() as session:
        names = await visible_names(session, principal)
        entries = await renewals.schedule(session, rt.config, principal.account_id,
                                          today(ctx), names=names)
    return json_response({"entries": [_entry_json(e) for e in entries]})


@routes.post("/billing/renewals", body=SELECTION_BODY, responses={201: open_object()},
             summary="Renew or cancel a selection, as one (cancelling is sensitive)")
async def renewal_selection(request: web.Request) -> web.Response:
    ctx, rt, principal = request.app[CONTEXT], runtime(request), principal_of(request)
    body = as_object(body_of(request))
    selections = [renewals.Selection(renewals.EntryKind(get_str(s, "kind")),
                                     opt_int(s, "id") or 0,
                                     renewals.Action(get_str(s, "action")))
                  for s in obj_list(body, "selections")]
    require_active(principal)
    async with ctx.db.write() as session:
        names = await visible_names(session, principal)
        entries = {(e.kind, e.id): e for e in await renewals.schedule(
            session, rt.config, principal.account_id, today(ctx), names=names)}
        # Rights before the selection's own checks: an entry the caller may not see
        # answers exactly as one that does not exist.
        unknown = [f"{s.kind.value} {s.id}" for s in selections
                   if (s.kind, s.id) not in entries]
        if unknown:
            raise NotFound(f"not in your renewal schedule: {', '.join(unknown[:20])}",
                           code="renewal_not_found")
        for sel in selections:
            entry = entries[(sel.kind, sel.id)]
            right = Right.CANCEL if sel.action is renewals.Action.CANCEL else Right.RENEW
            domain = await domain_access(session, principal, entry.domain, right)
            if sel.action is renewals.Action.CANCEL:
                await require_domain_sensitive(session, ctx, principal, SensitiveKind.CANCEL,
                                               domain)
        with billing_errors():
            result = await renewals.apply_selection(
                session, rt.config, principal.account_id, selections, actor_of(principal),
                today(ctx), names=names)
            order = await orders.view(session, result.order) if result.order else None
    return json_response({"order": _order_json(order) if order else None,
                          "cancelled": list(result.cancelled)}, status=201)


def setup(app: web.Application) -> None:
    if BILLING not in app:  # zonehost installs the deployment's config (install_billing)
        from billing.config import BillingConfig

        app[BILLING] = BillingRuntime.from_config(BillingConfig())
    routes.install(app)

