"""Invoice, credit-note and pro-forma PDFs (fpdf2, core fonts), EN or FR.

Rendered from the invoice's frozen snapshot, so a PDF downloaded years
later shows what was issued. Core fonts cover Latin-1: other characters
in customer-chosen text are replaced rather than failing the download.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from fpdf import FPDF

from billing.i18n import format_date, text
from billing.invoices import InvoiceView
from billing.orders import OrderView
from billing.vat import format_cents, format_rate
from storage.models.billing import InvoiceKind


def _latin1(value: object) -> str:
    return str(value).replace("\u2013", "-").replace("\u2019", "'").encode(
        "latin-1", "replace").decode("latin-1")


class _Document:
    def __init__(self, title: str) -> None:
        self.pdf = FPDF(format="A4")
        self.pdf.set_auto_page_break(auto=True, margin=18)
        self.pdf.set_title(_latin1(title))
        self.pdf.set_creator("zonehost billing")
        self.pdf.add_page()
        self.pdf.set_font("Helvetica", "B", 18)
        self.pdf.cell(0, 12, _latin1(title), new_x="LMARGIN", new_y="NEXT")
        self.pdf.ln(2)

    def field(self, label: str, value: object) -> None:
        self.pdf.set_font("Helvetica", "B", 10)
        self.pdf.cell(45, 6, _latin1(label))
        self.pdf.set_font("Helvetica", "", 10)
        self.pdf.cell(0, 6, _latin1(value), new_x="LMARGIN", new_y="NEXT")

    def party(self, label: str, party: dict[str, Any], vat_label: str) -> None:
        self.pdf.ln(3)
        self.pdf.set_font("Helvetica", "B", 11)
        self.pdf.cell(0, 6, _latin1(label), new_x="LMARGIN", new_y="NEXT")
        self.pdf.set_font("Helvetica", "", 10)
        lines = [party.get("name", ""), *str(party.get("address", "")).splitlines(),
                 party.get("country", "")]
        if party.get("vat_number"):
            lines.append(f"{vat_label}: {party['vat_number']}")
        for line in lines:
            if line:
                self.pdf.cell(0, 5, _latin1(line), new_x="LMARGIN", new_y="NEXT")

    def table(self, language: str, currency: str, lines: Sequence[dict[str, Any]]) -> None:
        self.pdf.ln(5)
        self.pdf.set_font("Helvetica", "B", 10)
        self.pdf.cell(140, 7, _latin1(text(language, "pdf.description")), border="B")
        self.pdf.cell(0, 7, _latin1(text(language, "pdf.amount")), border="B", align="R",
                      new_x="LMARGIN", new_y="NEXT")
        self.pdf.set_font("Helvetica", "", 10)
        for line in lines:
            self.pdf.cell(140, 6, _latin1(line.get("description", ""))[:90])
            self.pdf.cell(0, 6, format_cents(int(line["amount_cents"]), currency, language),
                          align="R", new_x="LMARGIN", new_y="NEXT")

    def totals(self, language: str, currency: str, subtotal: int, vat: int, total: int,
               rate_bp: int) -> None:
        self.pdf.ln(3)
        for key, value, bold in (
            (text(language, "pdf.subtotal"), subtotal, False),
            (text(language, "pdf.vat", rate=format_rate(rate_bp)), vat, False),
            (text(language, "pdf.total"), total, True),
        ):
            self.pdf.set_font("Helvetica", "B" if bold else "", 10)
            self.pdf.cell(140, 6, _latin1(key), align="R")
            self.pdf.cell(0, 6, format_cents(value, currency, language), align="R",
                          new_x="LMARGIN", new_y="NEXT")

    def note(self, value: str) -> None:
        self.pdf.ln(4)
        self.pdf.set_font("Helvetica", "I", 9)
        self.pdf.multi_cell(0, 5, _latin1(value), new_x="LMARGIN", new_y="NEXT")

    def output(self) -> bytes:
        return bytes(self.pdf.output())


def _vat_note(language: str, reverse_charge: bool, rate_bp: int) -> str | None:
    if reverse_charge:
        return text(language, "pdf.reverse_charge")
    if rate_bp == 0:
        return text(language, "pdf.out_of_scope")
    return None


def invoice_pdf(invoice: InvoiceView) -> bytes:
    language = invoice.language
    kind = "pdf.credit_note" if invoice.kind is InvoiceKind.CREDIT_NOTE else "pdf.invoice"
    doc = _Document(f"{text(language, kind)} {invoice.display_number}")
    doc.field(text(language, "pdf.number"), invoice.display_number)
    doc.field(text(language, "pdf.date"), format_date(invoice.issued_on, language))
    if invoice.order_number:
        doc.field(text(language, "pdf.order"), invoice.order_number)
    if invoice.credited_number is not None:
        doc.field(text(language, "pdf.credits"), invoice.credited_number)
    if invoice.reason:
        doc.field(text(language, "pdf.reason"), invoice.reason)
    vat_label = text(language, "pdf.vat_number")
    doc.party(text(language, "pdf.seller"), invoice.seller, vat_label)
    doc.party(text(language, "pdf.buyer"), invoice.buyer, vat_label)
    doc.table(language, invoice.currency, invoice.lines)
    doc.totals(language, invoice.currency, invoice.subtotal_cents, invoice.vat_cents,
               invoice.total_cents, invoice.vat_rate_bp)
    note = _vat_note(language, invoice.reverse_charge, invoice.vat_rate_bp)
    if note:
        doc.note(note)
    return doc.output()


def proforma_pdf(
    order: OrderView, seller: dict[str, Any], buyer: dict[str, Any], today: date
) -> bytes:
    language = order.language
    doc = _Document(f"{text(language, 'pdf.proforma')} {order.number}")
    doc.field(text(language, "pdf.order"), order.number)
    doc.field(text(language, "pdf.date"), format_date(today, language))
    vat_label = text(language, "pdf.vat_number")
    doc.party(text(language, "pdf.seller"), seller, vat_label)
    doc.party(text(language, "pdf.buyer"), buyer, vat_label)
    doc.table(language, order.currency, [
        {"description": ln.description, "amount_cents": ln.amount_cents} for ln in order.lines
    ])
    doc.totals(language, order.currency, order.subtotal_cents, order.vat_cents,
               order.total_cents, order.vat_rate_bp)
    doc.note(text(language, "pdf.proforma_note", order=order.number))
    doc.note(text(language, "pdf.transfer_note", order=order.number))
    note = _vat_note(language, order.reverse_charge, order.vat_rate_bp)
    if note:
        doc.note(note)
    return doc.output()
