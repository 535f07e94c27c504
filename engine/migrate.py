"""Schema creation. (Interim: create_all; Alembic migrations replace this in issue 5.)"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from .schema import metadata


async def ensure_schema(engine: AsyncEngine, *, create: bool, where: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
