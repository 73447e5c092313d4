"""What nameservers report through the store: how far each has applied the
change feed (for the API's propagation status) and per-zone query counts
(for the customer statistics page)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, utcnow


class NameserverInstance(Base):
    __tablename__ = "nameserver_instances"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid or configured
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    applied_change_id: Mapped[int] = mapped_column(BigInteger, default=0)


class QueryCount(Base):
    __tablename__ = "query_counts"

    zone_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    qtype: Mapped[int] = mapped_column(Integer, primary_key=True)
    rcode: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
