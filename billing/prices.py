"""Price lists: per account (or the default list), per extension and product.

Prices are not public: an account sees its own list, a visitor's quote uses
the default list. A price is looked up from the most specific entry:
account + extension, account + any extension ("*"), default + extension,
default + "*". All amounts are integer cents before VAT.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from billing.audit import audit
from billing.errors import InvalidRequest, PriceMissing
from storage.models.billing import Price
from storage.zones import Actor

ANY_EXTENSION = "*"
MAX_CENTS = 10**11  # one billion: a typo guard, not a business rule


class Product(enum.StrEnum):
    REGISTER = "register"
    TRANSFER_IN = "transfer_in"
    RENEW = "renew"  # one year
    RESTORE = "restore"  # the restore fee, on top of the renewal
    OWNER_CHANGE = "owner_change"
    MAIL_REDIRECT_PACK = "mail_redirect_pack"  # 50 mail aliases instead of 5, per year


OPTION_PRODUCTS = frozenset({Product.MAIL_REDIRECT_PACK})


@dataclass(frozen=True, slots=True)
class PriceEntry:
    account_id: int | None
    extension: str
    product: Product
    cents: int


def normalise_extension(text: str) -> str:
    ext = text.strip().lower().strip(".")
    if ext != ANY_EXTENSION and (not ext or any(not p for p in ext.split("."))):
        raise InvalidRequest([f"invalid extension {text!r}"])
    return ext


def parse_product(text: str) -> Product:
    try:
        return Product(text.strip().lower().replace("-", "_"))
    except ValueError:
        known = ", ".join(p.value for p in Product)
        raise InvalidRequest([f"unknown product {text!r} (known: {known})"]) from None


async def set_price(
    session: AsyncSession, account_id: int | None, extension: str, product: Product, cents: int,
    actor: Actor,
) -> PriceEntry:
    ext = normalise_extension(extension)
    if not 0 <= cents <= MAX_CENTS:
        raise InvalidRequest([f"invalid price {cents}: cents from 0 to {MAX_CENTS}"])
    row = (await session.execute(
        select(Price).where(_owner(account_id), Price.extension == ext,
                            Price.product == product.value).with_for_update()
    )).scalar_one_or_none()
    before = None if row is None else row.cents
    if row is None:
        row = Price(account_id=account_id, extension=ext, product=product.value, cents=cents)
        session.add(row)
    else:
        row.cents = cents
        row.updated_at = datetime.now(UTC)
    await session.flush()
    audit(session, actor, "billing.price.set", "price", f"{ext}/{product.value}",
          account_id=account_id, before=before, after=cents)
    return PriceEntry(account_id, ext, product, cents)


async def remove_price(
    session: AsyncSession, account_id: int | None, extension: str, product: Product, actor: Actor
) -> bool:
    ext = normalise_extension(extension)
    result = await session.execute(
        delete(Price).where(_owner(account_id), Price.extension == ext, Price.product == product.value)
    )
    removed = bool(getattr(result, "rowcount", 0))
    if removed:
        audit(session, actor, "billing.price.remove", "price", f"{ext}/{product.value}",
              account_id=account_id)
    return removed


def _owner(account_id: int | None) -> ColumnElement[bool]:
    return Price.account_id.is_(None) if account_id is None else Price.account_id == account_id


async def list_prices(session: AsyncSession, account_id: int | None) -> list[PriceEntry]:
    rows = (await session.execute(
        select(Price).where(_owner(account_id)).order_by(Price.extension, Price.product)
    )).scalars()
    return [PriceEntry(r.account_id, r.extension, Product(r.product), r.cents) for r in rows]


@dataclass(frozen=True, slots=True)
class PriceBook:
    """Every entry that can apply to one account, to price many lines with one query."""

    account_id: int | None
    entries: tuple[PriceEntry, ...]

    def get(self, extension: str, product: Product) -> int | None:
        ext = extension.lower().strip(".")
        candidates = [
            e for e in self.entries
            if e.product is product and e.extension in (ext, ANY_EXTENSION)
        ]
        if not candidates:
            return None
        best = min(candidates, key=lambda e: (e.account_id is None, e.extension == ANY_EXTENSION))
        return best.cents

    def require(self, extension: str, product: Product) -> int:
        cents = self.get(extension, product)
        if cents is None:
            ext = extension.strip(".")
            raise PriceMissing(f"no price for {product.value} on .{ext}: ask support for a quote")
        return cents


async def load_price_book(session: AsyncSession, account_id: int | None) -> PriceBook:
    owners: list[ColumnElement[bool]] = [Price.account_id.is_(None)]
    if account_id is not None:
        owners.append(Price.account_id == account_id)
    rows = (await session.execute(select(Price).where(or_(*owners)))).scalars()
    return PriceBook(account_id, tuple(
        PriceEntry(r.account_id, r.extension, Product(r.product), r.cents) for r in rows
    ))


async def price_of(
    session: AsyncSession, account_id: int | None, extension: str, product: Product
) -> int:
    """The price that applies, from the most specific list entry."""
    return (await load_price_book(session, account_id)).require(extension, product)
