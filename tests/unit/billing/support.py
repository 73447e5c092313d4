"""Store helpers shared by the billing integration and end-to-end tests.

They create only what billing does not own (accounts, users) directly as
rows; everything billing owns goes through billing's own services.
"""

from __future__ import annotations

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
