"""`zonehost billing ...`: the lifecycle job, prices, portfolio, orders,
payments recorded by operators, invoices and the e-mail outbox."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

from billing import invoices, orders, outbox, payments, pdf, portfolio, prices, stats
from billing.config import BillingConfig
from billing.errors import BillingError
from billing.gateway import WorkQueueGateway
from billing.job import run_daily
from billing.vat import format_cents
from storage.db import Database
from storage.models import Account
from storage.models.billing import (
    DomainStatus,
    OrderStatus,
    OutboxMessage,
    OutboxStatus,
    PaymentMethod,
)
from storage.zones import OPERATOR
from zonehost.config import Settings, billing_config
from zonehost.errors import CommandError
from zonehost.runtime import run_with_database

T = TypeVar("T")


def register(sub: Any) -> None:
    billing = sub.add_parser("billing", help="portfolio, orders, payments, invoices, lifecycle")
    actions = billing.add_subparsers(dest="billing_command", required=True, metavar="ACTION")

    p = actions.add_parser("run", help="the daily lifecycle job (idempotent)")
    p.add_argument("--date", type=_date, help="the day to run for (default: today, UTC)")
    p.set_defaults(func=cmd_run)

    price = actions.add_parser("price", help="price lists").add_subparsers(
        dest="price_command", required=True, metavar="ACTION")
    p = price.add_parser("set", help="set a price (ACCOUNT: an id or 'default')")
    p.add_argument("account")
    p.add_argument("extension", help="'fr', 'co.uk', or '*' for any")
    p.add_argument("product", help=", ".join(x.value for x in prices.Product))
    p.add_argument("cents", type=int, help="before VAT, integer cents")
    p.set_defaults(func=cmd_price_set)
    p = price.add_parser("remove", help="remove a price")
    p.add_argument("account")
    p.add_argument("extension")
    p.add_argument("product")
    p.set_defaults(func=cmd_price_remove)
    p = price.add_parser("list", help="an account's list (default: the default list)")
    p.add_argument("account", nargs="?", default="default")
    p.set_defaults(func=cmd_price_list)

    contact = actions.add_parser("contact", help="contacts").add_subparsers(
        dest="contact_command", required=True, metavar="ACTION")
    p = contact.add_parser("add", help="add a contact to an account; prints its id")
    p.add_argument("account", type=int)
    p.add_argument("name")
    p.add_argument("email")
    p.add_argument("--organisation", default="")
    p.add_argument("--country", default="FR")
    p.set_defaults(func=cmd_contact_add)

    domain = actions.add_parser("domain", help="the portfolio").add_subparsers(
        dest="domain_command", required=True, metavar="ACTION")
    p = domain.add_parser("add", help="put a domain in an account's portfolio")
    p.add_argument("name")
    p.add_argument("--account", type=int, required=True)
    p.add_argument("--expires", type=_date, required=True, help="YYYY-MM-DD")
    for role in ("owner", "admin", "billing"):
        p.add_argument(f"--{role}", type=int, help=f"{role} contact id")
    p.add_argument("--unit", type=int, help="business unit id")
    p.add_argument("--profile", help="lifecycle profile (default: per extension)")
    p.add_argument("--transfer-code")
    p.set_defaults(func=cmd_domain_add)
    p = domain.add_parser("list", help="list domains")
    p.add_argument("--account", type=int)
    p.add_argument("--status", choices=[s.value for s in DomainStatus])
    p.add_argument("--csv", action="store_true", help="CSV export")
    p.add_argument("--date", type=_date)
    p.set_defaults(func=cmd_domain_list)
    p = domain.add_parser("set-expiry", help="correct a domain's expiry date")
    p.add_argument("name")
    p.add_argument("expires", type=_date)
    p.set_defaults(func=cmd_domain_expiry)
    p = domain.add_parser("stats", help="queries answered for a domain, by day, type and rcode")
    p.add_argument("name")
    p.add_argument("--from", dest="since", type=_date, help="first day (default: 29 days "
                                                              "before --to)")
    p.add_argument("--to", dest="until", type=_date, help="last day (default: today, UTC)")
    p.add_argument("--csv", action="store_true", help="one row per day, type and rcode")
    p.set_defaults(func=cmd_domain_stats)

    order = actions.add_parser("order", help="orders").add_subparsers(
        dest="order_command", required=True, metavar="ACTION")
    p = order.add_parser(
        "create", help="create an order for an account",
        description="ITEMs: register:NAME[:YEARS] renew:NAME[:YEARS] restore:NAME "
                    "transfer-in:NAME[:CODE] option:NAME:PRODUCT owner-change:NAME:CONTACT_ID",
    )
    p.add_argument("account", type=int)
    p.add_argument("items", nargs="+", metavar="ITEM")
    p.add_argument("--date", type=_date)
    p.set_defaults(func=cmd_order_create)
    p = order.add_parser("list", help="list orders")
    p.add_argument("--account", type=int)
    p.add_argument("--status", choices=[s.value for s in OrderStatus])
    p.set_defaults(func=cmd_order_list)
    p = order.add_parser("show", help="one order and its lines")
    p.add_argument("number")
    p.set_defaults(func=cmd_order_show)
    p = order.add_parser("cancel", help="cancel an unpaid order")
    p.add_argument("number")
    p.set_defaults(func=cmd_order_cancel)
    p = order.add_parser("proforma", help="write an unpaid order's pro-forma PDF")
    p.add_argument("number")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_order_proforma)

    payment = actions.add_parser("payment", help="payments").add_subparsers(
        dest="payment_command", required=True, metavar="ACTION")
    p = payment.add_parser("record", help="record a cheque, bank transfer or direct debit")
    p.add_argument("order")
    p.add_argument("--method", required=True,
                   choices=[m.value for m in payments.OPERATOR_METHODS])
    p.add_argument("--reference", help="bank reference (must name the order) or cheque number")
    p.add_argument("--amount", type=int, help="cents received (default: the order's total)")
    p.add_argument("--date", type=_date, help="day the money arrived (default: today)")
    p.add_argument("--key", help="idempotency key: recording twice with it is harmless")
    p.set_defaults(func=cmd_payment_record)
    p = payment.add_parser("list", help="list payments")
    p.add_argument("--account", type=int)
    p.set_defaults(func=cmd_payment_list)

    invoice = actions.add_parser("invoice", help="invoices").add_subparsers(
        dest="invoice_command", required=True, metavar="ACTION")
    p = invoice.add_parser("list", help="list invoices and credit notes")
    p.add_argument("--account", type=int)
    p.set_defaults(func=cmd_invoice_list)
    p = invoice.add_parser("pdf", help="write an invoice's PDF")
    p.add_argument("number", type=int)
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_invoice_pdf)
    p = invoice.add_parser("credit", help="issue a credit note")
    p.add_argument("number", type=int)
    p.add_argument("--reason", required=True)
    p.add_argument("--amount", type=int, help="cents before VAT (default: all that remains)")
    p.set_defaults(func=cmd_invoice_credit)

    box = actions.add_parser("outbox", help="billing e-mails").add_subparsers(
        dest="outbox_command", required=True, metavar="ACTION")
    p = box.add_parser("list", help="list pending e-mails (--all: every one)")
    p.add_argument("--all", action="store_true")
    p.set_defaults(func=cmd_outbox_list)
    p = box.add_parser("deliver", help="send pending e-mails through the SMTP relay")
    p.set_defaults(func=cmd_outbox_deliver)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid date {text!r}: expected YYYY-MM-DD") from None


def _today(args: argparse.Namespace) -> date:
    value = getattr(args, "date", None)
    return value if isinstance(value, date) else datetime.now(UTC).date()


def _run(settings: Settings, work: Callable[[Database, BillingConfig], Awaitable[T]]) -> T:
    config = billing_config(settings)

    async def wrapped(db: Database) -> T:
        try:
            return await work(db, config)
        except BillingError as exc:
            raise CommandError(str(exc)) from exc

    return run_with_database(settings, wrapped)


def _account(text: str) -> int | None:
    if text.lower() == "default":
        return None
    try:
        return int(text)
    except ValueError:
        raise CommandError(f"invalid account {text!r}: an id or 'default'") from None


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    today = _today(args)

    async def work(db: Database, config: BillingConfig) -> Any:
        return await run_daily(config, db, today)

    report = _run(settings, work)
    for name, n in report.reminders_sent:
        print(f"reminder {n} sent\t{name.rstrip('.')}")
    for name, product, n in report.option_reminders_sent:
        print(f"option reminder {n} sent\t{name.rstrip('.')}\t{product}")
    for name, n in report.reminders_skipped:
        print(f"reminder {n} skipped (overtaken)\t{name.rstrip('.')}")
    for name in report.suspended:
        print(f"suspended\t{name.rstrip('.')}")
    for name in report.reactivated:
        print(f"reactivated\t{name.rstrip('.')}")
    for name in report.deleted:
        print(f"deleted\t{name.rstrip('.')}")
    print(f"billing run for {today}: {report.domains} domains, "
          f"{len(report.reminders_sent)} reminders, {len(report.suspended)} suspended, "
          f"{len(report.deleted)} deleted, {report.options_expired} options expired, "
          f"{len(report.errors)} errors")
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if report.errors else 0


def cmd_price_set(args: argparse.Namespace, settings: Settings) -> int:
    account = _account(args.account)

    async def work(db: Database, config: BillingConfig) -> prices.PriceEntry:
        async with db.write() as session:
            if account is not None and await session.get(Account, account) is None:
                raise CommandError(f"account {account} does not exist")
            return await prices.set_price(session, account, args.extension,
                                          prices.parse_product(args.product), args.cents,
                                          OPERATOR)

    entry = _run(settings, work)
    print(f"{args.account}\t{entry.extension}\t{entry.product.value}\t{entry.cents}")
    return 0


def cmd_price_remove(args: argparse.Namespace, settings: Settings) -> int:
    account = _account(args.account)

    async def work(db: Database, config: BillingConfig) -> bool:
        async with db.write() as session:
            return await prices.remove_price(session, account, args.extension,
                                             prices.parse_product(args.product), OPERATOR)

    if not _run(settings, work):
        raise CommandError("no such price")
    print("removed")
    return 0


def cmd_price_list(args: argparse.Namespace, settings: Settings) -> int:
    account = _account(args.account)

    async def work(db: Database, config: BillingConfig) -> list[prices.PriceEntry]:
        async with db.read() as session:
            return await prices.list_prices(session, account)

    for e in _run(settings, work):
        print(f"{args.account}\t{e.extension}\t{e.product.value}\t{e.cents}")
    return 0


def cmd_contact_add(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database, config: BillingConfig) -> int:
        async with db.write() as session:
            return await portfolio.add_contact(session, args.account, args.name, args.email,
                                               organisation=args.organisation,
                                               country=args.country)

    print(_run(settings, work))
    return 0


def cmd_domain_add(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database, config: BillingConfig) -> str:
        async with db.write() as session:
            domain = await portfolio.add_domain(
                session, config, account_id=args.account, name=args.name,
                expires_on=args.expires, actor=OPERATOR, owner_contact_id=args.owner,
                admin_contact_id=args.admin, billing_contact_id=args.billing,
                business_unit_id=args.unit, profile=args.profile,
                transfer_code=args.transfer_code,
            )
            return f"{domain.name.rstrip('.')} added: expires {domain.expires_on}, " \
                   f"profile {domain.profile}"

    print(_run(settings, work))
    return 0


def cmd_domain_list(args: argparse.Namespace, settings: Settings) -> int:
    filters = portfolio.PortfolioFilter(
        status=DomainStatus(args.status) if args.status else None,
        include_deleted=args.status == DomainStatus.DELETED.value,
    )

    async def work(db: Database, config: BillingConfig) -> list[portfolio.DomainView]:
        async with db.read() as session:
            return await portfolio.list_domains(session, config, args.account, filters,
                                                _today(args))

    views = _run(settings, work)
    if args.csv:
        sys.stdout.write(portfolio.to_csv(views))
        return 0
    for v in views:
        print(f"{v.name}\t{v.status.value}\t{v.expires_on}\t{v.profile}\t"
              f"{'hosted' if v.hosted else 'not hosted'}\t{v.offer.value}")
    return 0


def cmd_domain_expiry(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database, config: BillingConfig) -> None:
        async with db.write() as session:
            domain = await portfolio.find_domain(session, args.name, for_update=True)
            await portfolio.set_expiry(session, domain, args.expires, OPERATOR)

    _run(settings, work)
    print(f"{args.name} expires {args.expires}")
    return 0


def cmd_domain_stats(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database, config: BillingConfig) -> stats.DomainStats:
        since, until = stats.period(args.since, args.until, datetime.now(UTC).date())
        async with db.read() as session:
            domain = await portfolio.find_domain(session, args.name)
            return await stats.domain_stats(session, domain.name, since, until)

    found = _run(settings, work)
    if args.csv:
        sys.stdout.write(stats.to_csv(found))
        return 0
    for day, n in found.per_day():
        print(f"{day}\t{n}")
    print(f"{found.domain}: {found.total} queries from {found.since} to {found.until}")
    for title, totals in (("type", found.by_qtype()), ("rcode", found.by_rcode())):
        if totals:
            print(f"by {title}: " + ", ".join(f"{k} {n}" for k, n in totals.items()))
    return 0


_ITEM_KINDS = {
    "register": orders.ItemKind.REGISTER, "renew": orders.ItemKind.RENEW,
    "restore": orders.ItemKind.RESTORE, "transfer-in": orders.ItemKind.TRANSFER_IN,
    "option": orders.ItemKind.OPTION, "owner-change": orders.ItemKind.OWNER_CHANGE,
}


def parse_item(text: str) -> orders.OrderItem:
    parts = text.split(":")
    kind = _ITEM_KINDS.get(parts[0].lower())
    if kind is None or len(parts) < 2 or not parts[1]:
        raise CommandError(f"invalid item {text!r}: e.g. renew:example.fr or "
                           "option:example.fr:mail_redirect_pack")
    extra = parts[2] if len(parts) > 2 else ""
    try:
        if kind in (orders.ItemKind.REGISTER, orders.ItemKind.RENEW):
            return orders.OrderItem(kind, parts[1], years=int(extra or 1))
        if kind is orders.ItemKind.OPTION:
            return orders.OrderItem(kind, parts[1], product=extra)
        if kind is orders.ItemKind.OWNER_CHANGE:
            return orders.OrderItem(kind, parts[1], params={"owner_contact_id": int(extra)})
        if kind is orders.ItemKind.TRANSFER_IN:
            return orders.OrderItem(kind, parts[1], params={"auth_code": extra})
    except ValueError:
        raise CommandError(f"invalid item {text!r}: a number was expected") from None
    return orders.OrderItem(kind, parts[1])


def _print_order(view: orders.OrderView) -> None:
    print(f"{view.number}\t{view.status.value}\taccount {view.account_id}\t"
          f"{format_cents(view.total_cents, view.currency)}")
    for ln in view.lines:
        mark = "done" if ln.done else ""
        print(f"  {ln.position}. {ln.description}\t{format_cents(ln.amount_cents, view.currency)}"
              f"\t{mark}".rstrip())


def cmd_order_create(args: argparse.Namespace, settings: Settings) -> int:
    items = [parse_item(t) for t in args.items]

    async def work(db: Database, config: BillingConfig) -> orders.OrderView:
        async with db.write() as session:
            order = await orders.create_order(session, config, args.account, items, OPERATOR,
                                              _today(args))
            return await orders.view(session, order)

    _print_order(_run(settings, work))
    return 0


def cmd_order_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database, config: BillingConfig) -> list[orders.OrderView]:
        async with db.read() as session:
            return await orders.list_orders(
                session, args.account, status=OrderStatus(args.status) if args.status else None)

    for view in _run(settings, work):
        print(f"{view.number}\t{view.status.value}\taccount {view.account_id}\t"
              f"{format_cents(view.total_cents, view.currency)}\t"
              f"{', '.join(ln.domain for ln in view.lines)}")
    return 0


def cmd_order_show(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database, config: BillingConfig) -> orders.OrderView:
        async with db.read() as session:
            return await orders.view(session, await orders.find_order(session, args.number))

    _print_order(_run(settings, work))
    return 0


def cmd_order_cancel(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database, config: BillingConfig) -> None:
        async with db.write() as session:
            order = await orders.find_order(session, args.number, for_update=True)
            await orders.cancel_order(session, order, OPERATOR)

    _run(settings, work)
    print(f"{args.number.upper()} cancelled")
    return 0


def cmd_order_proforma(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database, config: BillingConfig) -> bytes:
        async with db.read() as session:
            order = await orders.find_order(session, args.number)
            if order.status is not OrderStatus.PENDING_PAYMENT:
                raise CommandError(f"order {order.number} is {order.status.value}: "
                                   "see its invoice")
            account = await session.get(Account, order.account_id)
            assert account is not None
            return pdf.proforma_pdf(await orders.view(session, order),
                                    invoices.seller_snapshot(config),
                                    invoices.buyer_snapshot(account, order), _today(args))

    _write(args.output, _run(settings, work))
    return 0


def _write(path: str, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}") from exc
    print(f"{path}: {len(data)} bytes")


def cmd_payment_record(args: argparse.Namespace, settings: Settings) -> int:
    today = datetime.now(UTC).date()

    async def work(db: Database, config: BillingConfig) -> payments.PaymentResult:
        return await payments.record_payment(
            db, config, WorkQueueGateway(), order_number=args.order,
            method=PaymentMethod(args.method), amount_cents=args.amount,
            reference=args.reference, received_on=args.date or today, actor=OPERATOR,
            today=args.date or today, idempotency_key=args.key,
        )

    result = _run(settings, work)
    replay = " (already recorded with this key)" if result.replayed else ""
    print(f"{result.order_number} paid{replay}: payment {result.payment_id}, "
          f"invoice {result.invoice_number}, order {result.order_status.value}")
    return 0


def cmd_payment_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database, config: BillingConfig) -> list[payments.PaymentView]:
        async with db.read() as session:
            return await payments.list_payments(session, args.account)

    for p in _run(settings, work):
        print(f"{p.id}\t{p.order_number}\t{p.method.value}\t{p.status.value}\t"
              f"{format_cents(p.amount_cents, p.currency)}\t{p.reference or ''}\t{p.recorded_by}")
    return 0


def cmd_invoice_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database, config: BillingConfig) -> list[invoices.InvoiceView]:
        async with db.read() as session:
            return await invoices.list_invoices(session, config, args.account)

    for i in _run(settings, work):
        print(f"{i.number}\t{i.display_number}\t{i.kind.value}\t{i.issued_on}\t"
              f"account {i.account_id}\t{i.order_number or ''}\t"
              f"{format_cents(i.total_cents, i.currency)}")
    return 0


def cmd_invoice_pdf(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database, config: BillingConfig) -> bytes:
        async with db.read() as session:
            invoice = await invoices.find_invoice(session, args.number)
            return pdf.invoice_pdf(await invoices.to_view(session, config, invoice))

    _write(args.output, _run(settings, work))
    return 0


def cmd_invoice_credit(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database, config: BillingConfig) -> invoices.InvoiceView:
        async with db.write() as session:
            invoice = await invoices.find_invoice(session, args.number)
            note = await invoices.issue_credit_note(
                session, config, invoice, args.reason, datetime.now(UTC).date(), OPERATOR,
                subtotal_cents=args.amount)
            return await invoices.to_view(session, config, note)

    note = _run(settings, work)
    print(f"credit note {note.number} ({note.display_number}): "
          f"{format_cents(note.total_cents, note.currency)}")
    return 0


def cmd_outbox_list(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import select

    async def work(db: Database, config: BillingConfig) -> list[OutboxMessage]:
        async with db.read() as session:
            query = select(OutboxMessage).order_by(OutboxMessage.id)
            if not args.all:
                query = query.where(OutboxMessage.status == OutboxStatus.PENDING)
            return list((await session.execute(query)).scalars())

    for m in _run(settings, work):
        print(f"{m.id}\t{m.status.value}\t{m.kind}\t{', '.join(m.recipients)}\t{m.subject}")
    return 0


def cmd_outbox_deliver(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database, config: BillingConfig) -> outbox.DeliveryReport:
        if config.smtp is None:
            raise CommandError("no SMTP relay configured (billing_smtp_host)")
        from billing.mailer import SmtpMailer

        return await outbox.deliver(db, config, SmtpMailer(config.smtp))

    report = _run(settings, work)
    print(f"{report.sent} sent, {report.failed} to retry, {report.given_up} given up")
    return 0 if report.failed == 0 and report.given_up == 0 else 1
