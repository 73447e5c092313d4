"""English and French texts of e-mails, PDFs and exports, chosen per account.

`text(language, key, **values)` falls back to English for an unknown
language. Texts stay in Latin-1 so the PDF core fonts can draw them.
"""

from __future__ import annotations

LANGUAGES = ("en", "fr")

_EN: dict[str, str] = {
    # statuses
    "status.active": "active",
    "status.expired": "expired",
    "status.suspended": "suspended",
    "status.redemption": "in redemption",
    "status.deleted": "deleted",
    "order.pending_payment": "pending payment",
    "order.paid": "paid",
    "order.in_progress": "in progress",
    "order.done": "done",
    "order.cancelled": "cancelled",
    # CSV export
    "csv.domain": "domain",
    "csv.plan": "plan",
    "csv.status": "status",
    "csv.expires_on": "expiry date",
    "csv.owner": "owner",
    "csv.admin": "administrative contact",
    "csv.billing": "billing contact",
    "csv.business_unit": "business unit",
    "csv.options": "options",
    "csv.locked": "transfer lock",
    "csv.hosted": "zone hosted",
    # order lines
    "line.register": "Registration of {domain} for {years} year(s)",
    "line.transfer_in": "Transfer of {domain} (1 year)",
    "line.renew": "Renewal of {domain} for {years} year(s)",
    "line.restore": "Restore fee for {domain}",
    "line.option": "{product} for {domain}, {years} year(s)",
    "line.owner_change": "Change of owner of {domain}",
    "product.mail_redirect_pack": "Mail-redirect pack (50 aliases)",
    # reminders
    "reminder.subject":
        "Your subscriptions are about to expire \u2013 action needed \u2013 reminder {n}",
    "reminder.greeting": "Hello,",
    "reminder.before":
        "The domain {domain} expires on {expires_on} ({days} days from now).",
    "reminder.today": "The domain {domain} expires today, {expires_on}.",
    "reminder.after":
        "The domain {domain} expired on {expires_on}. Without renewal its zone stops being "
        "served on {suspend_on} and it is deleted on {delete_on}.",
    "reminder.renew": "Renew it from your renewal schedule: {url}",
    "reminder.price": "Renewal for one year: {price} before VAT.",
    "reminder.restore":
        "From {restore_from} the domain can only be restored, with a restore fee of {fee} "
        "before VAT, until {restore_until}.",
    "reminder.options": "Options expiring with it: {options}.",
    "reminder.signature": "The domains service",
    "reminder.option.before":
        "The option {product} of the domain {domain} expires on {expires_on} ({days} days "
        "from now); the domain itself runs until {domain_expires_on}.",
    "reminder.option.today":
        "The option {product} of the domain {domain} expires today, {expires_on}; the "
        "domain itself runs until {domain_expires_on}.",
    "reminder.option.price": "The option for one year: {price} before VAT.",
    # invoices
    "invoice.mail.subject": "Invoice {number}",
    "invoice.mail.body":
        "Hello,\n\nThank you for your payment of {total} for order {order}.\n"
        "Invoice {number} is available in your client space: {url}\n\nThe domains service",
    "pdf.invoice": "Invoice",
    "pdf.credit_note": "Credit note",
    "pdf.proforma": "Pro-forma invoice",
    "pdf.proforma_note": "This is not an invoice. Order {order}, awaiting payment.",
    "pdf.number": "Number",
    "pdf.date": "Date",
    "pdf.order": "Order",
    "pdf.credits": "Credits invoice",
    "pdf.seller": "Seller",
    "pdf.buyer": "Customer",
    "pdf.vat_number": "VAT number",
    "pdf.description": "Description",
    "pdf.amount": "Amount",
    "pdf.subtotal": "Total before VAT",
    "pdf.vat": "VAT {rate} %",
    "pdf.total": "Total",
    "pdf.reverse_charge":
        "Reverse charge: VAT to be accounted for by the customer "
        "(article 196 of Council Directive 2006/112/EC).",
    "pdf.out_of_scope": "VAT not applicable: services supplied outside the EU.",
    "pdf.reason": "Reason",
    "pdf.transfer_note": "Bank transfers must quote the order number {order}.",
}

_FR: dict[str, str] = {
    "status.active": "actif",
    "status.expired": "expir\u00e9",
    "status.suspended": "suspendu",
    "status.redemption": "en r\u00e9demption",
    "status.deleted": "supprim\u00e9",
    "order.pending_payment": "en attente de paiement",
    "order.paid": "pay\u00e9e",
    "order.in_progress": "en cours",
    "order.done": "termin\u00e9e",
    "order.cancelled": "annul\u00e9e",
    "csv.domain": "domaine",
    "csv.plan": "offre",
    "csv.status": "statut",
    "csv.expires_on": "date d'expiration",
    "csv.owner": "titulaire",
    "csv.admin": "contact administratif",
    "csv.billing": "contact facturation",
    "csv.business_unit": "entit\u00e9",
    "csv.options": "options",
    "csv.locked": "verrou de transfert",
    "csv.hosted": "zone h\u00e9berg\u00e9e",
    "line.register": "Enregistrement de {domain} pour {years} an(s)",
    "line.transfer_in": "Transfert de {domain} (1 an)",
    "line.renew": "Renouvellement de {domain} pour {years} an(s)",
    "line.restore": "Frais de restauration de {domain}",
    "line.option": "{product} pour {domain}, {years} an(s)",
    "line.owner_change": "Changement de titulaire de {domain}",
    "product.mail_redirect_pack": "Pack redirection e-mail (50 alias)",
    "reminder.subject":
        "Vos abonnements arrivent \u00e0 expiration \u2013 action requise \u2013 relance {n}",
    "reminder.greeting": "Bonjour,",
    "reminder.before":
        "Le domaine {domain} expire le {expires_on} (dans {days} jours).",
    "reminder.today": "Le domaine {domain} expire aujourd'hui, le {expires_on}.",
    "reminder.after":
        "Le domaine {domain} a expir\u00e9 le {expires_on}. Sans renouvellement, sa zone "
        "cesse d'\u00eatre servie le {suspend_on} et il est supprim\u00e9 le {delete_on}.",
    "reminder.renew": "Renouvelez-le depuis votre \u00e9ch\u00e9ancier : {url}",
    "reminder.price": "Renouvellement pour un an : {price} HT.",
    "reminder.restore":
        "\u00c0 partir du {restore_from}, le domaine ne peut plus qu'\u00eatre restaur\u00e9, "
        "avec des frais de restauration de {fee} HT, jusqu'au {restore_until}.",
    "reminder.options": "Options qui expirent avec lui : {options}.",
    "reminder.signature": "Le service des domaines",
    "reminder.option.before":
        "L'option {product} du domaine {domain} expire le {expires_on} (dans {days} jours) ; "
        "le domaine lui-m\u00eame court jusqu'au {domain_expires_on}.",
    "reminder.option.today":
        "L'option {product} du domaine {domain} expire aujourd'hui, le {expires_on} ; le "
        "domaine lui-m\u00eame court jusqu'au {domain_expires_on}.",
    "reminder.option.price": "L'option pour un an : {price} HT.",
    "invoice.mail.subject": "Facture {number}",
    "invoice.mail.body":
        "Bonjour,\n\nMerci pour votre paiement de {total} pour la commande {order}.\n"
        "La facture {number} est disponible dans votre espace client : {url}\n\n"
        "Le service des domaines",
    "pdf.invoice": "Facture",
    "pdf.credit_note": "Avoir",
    "pdf.proforma": "Facture pro forma",
    "pdf.proforma_note":
        "Ce document n'est pas une facture. Commande {order}, en attente de paiement.",
    "pdf.number": "Num\u00e9ro",
    "pdf.date": "Date",
    "pdf.order": "Commande",
    "pdf.credits": "Avoir sur la facture",
    "pdf.seller": "Vendeur",
    "pdf.buyer": "Client",
    "pdf.vat_number": "N\u00b0 de TVA",
    "pdf.description": "D\u00e9signation",
    "pdf.amount": "Montant",
    "pdf.subtotal": "Total HT",
    "pdf.vat": "TVA {rate} %",
    "pdf.total": "Total TTC",
    "pdf.reverse_charge":
        "Autoliquidation : TVA due par le preneur "
        "(article 196 de la directive 2006/112/CE).",
    "pdf.out_of_scope": "TVA non applicable, article 259-1 du CGI.",
    "pdf.reason": "Motif",
    "pdf.transfer_note": "Tout virement doit mentionner le num\u00e9ro de commande {order}.",
}

_TEXTS = {"en": _EN, "fr": _FR}


def language_of(code: str | None) -> str:
    return code if code in _TEXTS else "en"


def text(language: str | None, key: str, **values: object) -> str:
    table = _TEXTS[language_of(language)]
    template = table.get(key) or _EN.get(key) or key
    return template.format(**values) if values else template


def format_date(day: object, language: str | None) -> str:
    """ISO in English, DD/MM/YYYY in French."""
    from datetime import date

    if not isinstance(day, date):
        return str(day)
    if language_of(language) == "fr":
        return day.strftime("%d/%m/%Y")
    return day.isoformat()
