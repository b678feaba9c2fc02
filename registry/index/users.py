"""Users and groups in the SQL index's database, through an async engine of their own: logins read them
now and then and the admin commands change them, far from the content index's hot paths."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from registry.index.base import UserRecord
from registry.index.models import Group, GroupMember, User, utcnow
from registry.index.sql import create_engine


class SQLUserDirectory:
    def __init__(self, url: str) -> None:
        self.engine: AsyncEngine = create_engine(url)

    async def close(self) -> None:
        await self.engine.dispose()

    @staticmethod
    async def _id(conn: AsyncConnection, model: type[User] | type[Group], name: str) -> int:
        found = await conn.scalar(select(model.id).where(model.name == name))
        if found is None:
            raise ValueError(f"no such {'user' if model is User else 'group'}: {name}")
        return found

    async def get_user(self, name: str) -> UserRecord | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(User.id, User.password_hash, User.service_account).where(User.name == name)
                )
            ).first()
            if row is None:
                return None
            groups = await conn.scalars(
                select(Group.name)
                .join(GroupMember, GroupMember.group_id == Group.id)
                .where(GroupMember.user_id == row.id)
                .order_by(Group.name)
            )
            return UserRecord(name, row.password_hash, row.service_account, tuple(groups))

    async def list_users(self) -> list[UserRecord]:
        async with self.engine.connect() as conn:
            users = (
                await conn.execute(
                    select(User.id, User.name, User.password_hash, User.service_account).order_by(User.name)
                )
            ).all()
            memberships = (
                await conn.execute(
                    select(GroupMember.user_id, Group.name)
                    .join(Group, Group.id == GroupMember.group_id)
                    .order_by(Group.name)
                )
            ).all()
        groups: dict[int, list[str]] = {}
        for user_id, group in memberships:
            groups.setdefault(user_id, []).append(group)
        return [
            UserRecord(u.name, u.password_hash, u.service_account, tuple(groups.get(u.id, ()))) for u in users
        ]

    async def add_user(self, name: str, password_hash: str, service_account: bool = False) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    User.__table__.insert().values(
                        name=name, password_hash=password_hash, service_account=service_account
                    )
                )
        except IntegrityError:
            raise ValueError(f"user {name} exists already") from None

    async def set_password(self, name: str, password_hash: str) -> None:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(User).where(User.name == name).values(password_hash=password_hash, updated_at=utcnow())
            )
            if result.rowcount == 0:
                raise ValueError(f"no such user: {name}")

    async def remove_user(self, name: str) -> None:
        async with self.engine.begin() as conn:
            user_id = await self._id(conn, User, name)
            # Explicit, as SQLite only cascades on connections that enabled foreign keys.
            await conn.execute(delete(GroupMember).where(GroupMember.user_id == user_id))
            await conn.execute(delete(User).where(User.id == user_id))

    async def list_groups(self) -> dict[str, list[str]]:
        async with self.engine.connect() as conn:
            groups = await conn.scalars(select(Group.name).order_by(Group.name))
            listing: dict[str, list[str]] = {name: [] for name in groups}
            members = await conn.execute(
                select(Group.name, User.name)
                .join(GroupMember, GroupMember.group_id == Group.id)
                .join(User, User.id == GroupMember.user_id)
                .order_by(User.name)
            )
            for group, user in members:
                listing[group].append(user)
        return listing

    async def add_group(self, name: str) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(Group.__table__.insert().values(name=name))
        except IntegrityError:
            raise ValueError(f"group {name} exists already") from None

    async def remove_group(self, name: str) -> None:
        async with self.engine.begin() as conn:
            group_id = await self._id(conn, Group, name)
            await conn.execute(delete(GroupMember).where(GroupMember.group_id == group_id))
            await conn.execute(delete(Group).where(Group.id == group_id))

    async def add_member(self, group: str, user: str) -> None:
        async with self.engine.begin() as conn:
            group_id, user_id = await self._id(conn, Group, group), await self._id(conn, User, user)
            exists = await conn.scalar(
                select(GroupMember.user_id).where(
                    GroupMember.group_id == group_id, GroupMember.user_id == user_id
                )
            )
            if exists is None:
                await conn.execute(GroupMember.__table__.insert().values(group_id=group_id, user_id=user_id))

    async def remove_member(self, group: str, user: str) -> None:
        async with self.engine.begin() as conn:
            group_id, user_id = await self._id(conn, Group, group), await self._id(conn, User, user)
            result = await conn.execute(
                delete(GroupMember).where(GroupMember.group_id == group_id, GroupMember.user_id == user_id)
            )
            if result.rowcount == 0:
                raise ValueError(f"{user} is not a member of {group}")
