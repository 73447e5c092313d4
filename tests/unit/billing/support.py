"""Store helpers shared by the billing integration and end-to-end tests.

They create only what billing does not own (accounts, users) directly as
rows; everything billing owns goes through billing's own services.
"""

from __future__ import annotations

from datetime import date

from billing.config import BillingConfig
from storage.db import Database
from storage.models import Account, AccountStatus


async def make_account(
    db: Database, name: str = "Acme", *, country: str = "FR", language: str = "en",
    vat_number: str | None = None, email: str = "leader@acme.example",
) -> int:
    async with db.write() as session:
        account = Account(
            name=name, status=AccountStatus.ACTIVE, primary_email=email, country=country,
            language=language, vat_number=vat_number, postal_address="1 rue de la Paix\nParis",
        )
        session.add(account)
        await session.flush()
        return account.id


async def host_zone(db: Database, name: str, account_id: int | None = None) -> None:
    """Host `name` here: SOA, NS and an A record at www, through storage.zones."""
    from storage.dnsdata import parse_rrset, zone_origin
    from storage.zones import OPERATOR, SoaFields, create_zone

    origin = zone_origin(name)
    rrsets = [
        parse_rrset(origin, "@", "NS", 3600, ["ns1.example.net.", "ns2.example.net."]),
        parse_rrset(origin, "www", "A", 300, ["192.0.2.10"]),
    ]
    async with db.write() as session:
        await create_zone(
            session, origin, SoaFields(mname="ns1.example.net.", rname="hostmaster.example.net."),
            OPERATOR, account_id=account_id, rrsets=rrsets,
        )


async def set_prices(db: Database, account_id: int | None = None, **cents: int) -> None:
    """Prices on every extension ('*'), e.g. set_prices(db, renew=1200, restore=3000)."""
    from billing.prices import Product, set_price
    from storage.zones import OPERATOR

    async with db.write() as session:
        for product, value in cents.items():
            await set_price(session, account_id, "*", Product(product), value, OPERATOR)


async def add_domain(
    db: Database, account_id: int, name: str, expires_on: date, *,
    owner_email: str = "owner@acme.example", billing_email: str = "billing@acme.example",
    config: BillingConfig | None = None,
) -> int:
    from billing.portfolio import add_contact
    from billing.portfolio import add_domain as add
    from storage.zones import OPERATOR

    async with db.write() as session:
        owner = await add_contact(session, account_id, "Owner", owner_email)
        billing = await add_contact(session, account_id, "Billing", billing_email)
        domain = await add(
            session, config or BillingConfig(), account_id=account_id, name=name,
            expires_on=expires_on, actor=OPERATOR, owner_contact_id=owner,
            billing_contact_id=billing,
        )
        return domain.id
