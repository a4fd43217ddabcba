"""The composition root: the one place that names concrete adapters and wires them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from bot.phones import PhoneNumbers
from bot.settings import Settings
from core.clock import Clock
from core.plans import Catalogue
from core.ports import PhoneBook, UnitOfWorkFactory
from core.services import Lacre, Policy
from storage.db import make_engine
from storage.uow import SqlUnitOfWorkFactory


class SystemClock:
    """The wall clock, in UTC; everything else gets time from a Clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class App:
    settings: Settings
    engine: Engine
    uow: UnitOfWorkFactory
    clock: Clock
    lacre: Lacre


def bootstrap(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    uow: UnitOfWorkFactory | None = None,
    clock: Clock | None = None,
    phones: PhoneBook | None = None,
    catalogue: Catalogue | None = None,
    policy: Policy | None = None,
) -> App:
    """Build the application; every dependency can be replaced by a keyword argument."""
    settings = settings or Settings()
    engine = engine or make_engine(settings.database_url)
    uow = uow or SqlUnitOfWorkFactory(engine)
    clock = clock or SystemClock()
    policy = policy or Policy(
        cooldown=timedelta(seconds=settings.notification_cooldown_seconds),
        daily_paid_cap=settings.daily_paid_send_cap,
        allowed_regions=settings.allowed_regions,
        signing_url_template=settings.signing_url_template,
    )
    lacre = Lacre(
        uow=uow,
        clock=clock,
        phones=phones or PhoneNumbers(),
        catalogue=catalogue or Catalogue(),
        policy=policy,
    )
    return App(settings, engine, uow, clock, lacre)
