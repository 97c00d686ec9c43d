"""Database engine, the declarative base, and the one session dependency."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Executable, MetaData, Row
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Session

from app.core.admission import AdmittedSession, add_admission_gate
from app.core.config_cache import SESSION_KEY, ConfigCache
from app.core.settings import Settings

# Stable constraint names, so Alembic migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg's connection arguments. With no statement cache (a transaction pooler that does
    not track prepared statements), the statements SQLAlchemy must still prepare get names of
    their own, so two clients sharing a server connection never collide on one."""
    server_settings = {"application_name": "hallq"}
    if settings.db_plan_cache_mode != "server":
        server_settings["plan_cache_mode"] = settings.db_plan_cache_mode
    args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout_s,
        "command_timeout": settings.db_command_timeout_s,
        "server_settings": server_settings,
        "statement_cache_size": settings.db_statement_cache_size,
        "prepared_statement_cache_size": settings.db_statement_cache_size,
    }
    if settings.db_statement_cache_size == 0:
        args["prepared_statement_name_func"] = lambda: f"__hallq_{uuid.uuid4().hex}__"
    return args


def create_engine(settings: Settings) -> AsyncEngine:
    if not settings.database_url:
        raise RuntimeError(
            "DATABASE_URL is not set: start hallq with `make run` (which brings its own "
            "PostgreSQL) or set DATABASE_URL=postgresql+asyncpg://user:password@host/db"
        )
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=False,
        # A connection that died (database restart) is discarded on its next checkout error;
        # recycling keeps long-lived processes from holding connections forever.
        pool_recycle=1800,
        pool_timeout=settings.db_connect_timeout_s,
        connect_args=connect_args(settings),
    )
    # Sessions are let in first come, first served, as many as the pool has connections
    # (app/core/admission.py); the pool's timeout applies to that wait.
    add_admission_gate(
        engine,
        places=settings.db_pool_size + settings.db_max_overflow,
        timeout_s=settings.db_connect_timeout_s,
    )
    return engine


def create_sessionmaker(
    engine: AsyncEngine,
    config_cache: ConfigCache | None = None,
    session_class: type[Session] = Session,
) -> async_sessionmaker[AsyncSession]:
    """Sessions carry the process's configuration cache (app/core/config_cache.py); the app
    gives its own `session_class`, whose committed events are notified (app/events/notifier.py)."""
    info: dict[str, object] = {}
    if config_cache is not None:
        info[SESSION_KEY] = config_cache
    return async_sessionmaker(
        engine,
        class_=AdmittedSession,
        expire_on_commit=False,
        autobegin=True,
        info=info or None,
        sync_session_class=session_class,
    )


async def execute_alone(
    session: AsyncSession, statement: Executable, params: dict[str, Any], settings: Settings
) -> Sequence[Row[Any]]:
    """Run `statement` on its own, autocommitted: one round trip, its locks held only while it
    runs. Behind a transaction pooler (no statement cache, so a statement prepared outside a
    transaction may run on another server connection) it runs in a transaction instead. Either
    way the caller ends with `session.commit()`, which sends the notifications it queued."""
    if session.in_transaction():
        await session.commit()  # end what the session read before (e.g. a cache miss)
    options = {} if settings.statements_need_transaction else {"isolation_level": "AUTOCOMMIT"}
    connection = await session.connection(execution_options=options)
    return (await connection.execute(statement, params)).all()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; the service functions decide where transactions begin and end."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
