"""Every table of the store. Import from here so Alembic sees them all."""

from storage.models import auth, billing, mail, nameserver  # noqa: F401  (register tables)
from storage.models.base import Base, utcnow
from storage.models.core import (
    Account,
    AccountStatus,
    AuditEntry,
    BusinessUnit,
    Record,
    Right,
    RRset,
    User,
    UserRight,
    UserRole,
    Zone,
    ZoneChange,
    ZoneStatus,
)

__all__ = [
    "Account", "AccountStatus", "AuditEntry", "Base", "BusinessUnit", "RRset", "Record",
    "Right", "User", "UserRight", "UserRole", "Zone", "ZoneChange", "ZoneStatus", "utcnow",
]
