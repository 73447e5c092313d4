"""Billing's errors: one base class, small subclasses whose text is the message.

Each carries a stable `code` the zone API puts in its JSON error body, and
the HTTP status that fits it.
"""

from __future__ import annotations

from collections.abc import Sequence


class BillingError(Exception):
    """A billing operation was refused."""

    code = "billing_error"
    status = 400

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or self.code).strip())


class NotFound(BillingError):
    """Not found."""

    code = "not_found"
    status = 404


class InvalidRequest(BillingError):
    """The request is invalid; `reasons` lists every problem found."""

    code = "invalid"
    status = 400

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("; ".join(self.reasons))


class PriceMissing(BillingError):
    """No price is set for this product: ask support for a quote."""

    code = "price_missing"
    status = 409


class NotPayable(BillingError):
    """This order cannot be paid."""

    code = "not_payable"
    status = 409


class AlreadyPaid(NotPayable):
    """This order was already paid."""

    code = "already_paid"


class AmountMismatch(BillingError):
    """The amount does not match the order's total."""

    code = "amount_mismatch"
    status = 409


class ReferenceMismatch(BillingError):
    """The transfer reference does not contain the order number."""

    code = "reference_mismatch"
    status = 409


class DuplicatePayment(BillingError):
    """This payment reference was already recorded."""

    code = "duplicate_payment"
    status = 409


class WebhookRejected(BillingError):
    """The payment notification was refused."""

    code = "webhook_rejected"
    status = 400


class ProviderError(BillingError):
    """The payment provider could not be reached or refused the request."""

    code = "provider_error"
    status = 502


class Unavailable(BillingError):
    """This action is not available for this domain now."""

    code = "unavailable"
    status = 409


class InvoiceError(BillingError):
    """This invoice cannot be credited further."""

    code = "invoice_error"
    status = 409
