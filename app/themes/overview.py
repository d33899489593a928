"""The theme overview: how often each theme was coded, by group and by session, and the
coded passages, for the groups a person may see (hosts: all; facilitators: their own).

Hidden items are left out. An item belongs to one group and at most one session, so
counts per group (or per session) add up to a theme's total."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from app.access import ProgrammeContext
from app.evidence.access import coded_group_ids
from app.evidence.models import Coding, EvidenceItem, Theme
from app.models import Group, ProgrammeSession, User
from app.numbers import is_digits
from app.themes import themes as theme_service

NO_SESSION = "none"
TRIO_CHOICES = {
    "any": "Any item",
    "yes": "Only items from trios",
    "no": "Only items not from trios",
}
EXCERPTS_PER_THEME = 25


@dataclass
class Filters:
    session: int | str | None = None  # a session id, NO_SESSION, or None for every session
    group_id: int | None = None
    trio: str = "any"

    @property
    def active(self) -> bool:
        return self.session is not None or self.group_id is not None or self.trio != "any"


@dataclass
class Scope:
    """The programme, the groups visible to this person, and its sessions."""

    programme_id: int
    groups: list[Group]
    sessions: list[ProgrammeSession]
    allowed_group_ids: set[int] | None  # None: every group (hosts)


async def scope_for(db: AsyncSession, ctx: ProgrammeContext) -> Scope:
    allowed = await coded_group_ids(db, ctx)
    query = select(Group).where(Group.programme_id == ctx.programme.id)
    if allowed is not None:
        query = query.where(Group.id.in_(allowed))
    groups = list((await db.scalars(query.order_by(Group.position, Group.name, Group.id))).all())
    sessions = list(
        (
            await db.scalars(
                select(ProgrammeSession)
                .where(ProgrammeSession.programme_id == ctx.programme.id)
                .order_by(ProgrammeSession.starts_at, ProgrammeSession.id)
            )
        ).all()
    )
    return Scope(
        programme_id=ctx.programme.id,
        groups=groups,
        sessions=sessions,
        allowed_group_ids=None if allowed is None else {g.id for g in groups},
    )


def parse_filters(
    scope: Scope, *, session_id: str, group_id: str, trio: str
) -> tuple[Filters, dict[str, str]]:
    """Filters from the address; anything not offered is reported and left out."""
    filters = Filters()
    errors: dict[str, str] = {}
    raw_session = session_id.strip()
    if raw_session == NO_SESSION:
        filters.session = NO_SESSION
    elif raw_session:
        ids = {s.id for s in scope.sessions}
        if is_digits(raw_session) and len(raw_session) <= 10 and int(raw_session) in ids:
            filters.session = int(raw_session)
        else:
            errors["session_id"] = "Choose one of the sessions listed."
    raw_group = group_id.strip()
    if raw_group:
        ids = {g.id for g in scope.groups}
        if is_digits(raw_group) and len(raw_group) <= 10 and int(raw_group) in ids:
            filters.group_id = int(raw_group)
        else:
            errors["group_id"] = "Choose one of the groups listed."
    raw_trio = trio.strip() or "any"
    if raw_trio in TRIO_CHOICES:
        filters.trio = raw_trio
    else:
        errors["trio"] = "Choose one of the trio options listed."
    return filters, errors


def _conditions(scope: Scope, filters: Filters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        EvidenceItem.programme_id == scope.programme_id,
        EvidenceItem.hidden_at.is_(None),
        Theme.programme_id == scope.programme_id,
    ]
    if scope.allowed_group_ids is not None:
        conditions.append(EvidenceItem.group_id.in_(scope.allowed_group_ids))
    if filters.group_id is not None:
        conditions.append(EvidenceItem.group_id == filters.group_id)
    if filters.session == NO_SESSION:
        conditions.append(EvidenceItem.session_id.is_(None))
    elif filters.session is not None:
        conditions.append(EvidenceItem.session_id == filters.session)
    if filters.trio == "yes":
        conditions.append(EvidenceItem.from_trio.is_(True))
    elif filters.trio == "no":
        conditions.append(EvidenceItem.from_trio.is_(False))
    return conditions


def coded(query: Select[Any], scope: Scope, filters: Filters) -> Select[Any]:
    """A query over codings, joined to their item and theme, limited to what is visible."""
    return (
        query.select_from(Coding)
        .join(EvidenceItem, EvidenceItem.id == Coding.item_id)
        .join(Theme, Theme.id == Coding.theme_id)
        .where(and_(*_conditions(scope, filters)))
    )


@dataclass
class Count:
    items: int = 0  # distinct items coded (whole or by excerpt)
    excerpts: int = 0  # excerpt codings
    codings: int = 0

    def add(self, other: Count) -> None:
        self.items += other.items
        self.excerpts += other.excerpts
        self.codings += other.codings


Key = ColumnElement[Any] | QueryableAttribute[Any]
CountKey = tuple[int | None, int | None]  # (theme, group or session); None where not split


async def _counts(
    db: AsyncSession,
    scope: Scope,
    filters: Filters,
    *,
    theme_key: Key | None,
    dimension: Key | None,
) -> dict[CountKey, Count]:
    """Counts split by theme and by a dimension (either may be None: not split). Constants
    are never grouped by: PostgreSQL refuses them in GROUP BY."""
    keys = [k for k in (theme_key, dimension) if k is not None]
    query = coded(
        select(
            *keys,
            func.count(func.distinct(Coding.item_id)),
            func.sum(case((Coding.source.is_not(None), 1), else_=0)),
            func.count(Coding.id),
        ),
        scope,
        filters,
    )
    if keys:
        query = query.group_by(*keys)
    out: dict[CountKey, Count] = {}
    for row in (await db.execute(query)).all():
        values = list(row)
        theme_id = values.pop(0) if theme_key is not None else None
        dim = values.pop(0) if dimension is not None else None
        items, excerpts, codings = values
        out[(theme_id, dim)] = Count(int(items), int(excerpts or 0), int(codings))
    return out


@dataclass
class Row:
    """One theme's counts along one dimension (groups or sessions)."""

    theme: Theme | None  # None for the totals row
    label: str
    is_child: bool
    cells: list[Count]
    total: Count


@dataclass
class Table:
    columns: list[tuple[int | None, str]]  # (group or session id, heading)
    rows: list[Row]
    totals: Row


@dataclass
class CodedPassage:
    coding_id: int
    theme_id: int
    item_id: int
    item_title: str
    group_id: int
    group_name: str
    session_title: str
    from_trio: bool
    source: str | None
    excerpt: str
    memo: str
    coder_name: str
    coded_at: datetime


@dataclass
class ThemeSection:
    theme: Theme
    label: str
    colour: theme_service.Colour
    is_child: bool
    passages: list[CodedPassage] = field(default_factory=list)
    total_codings: int = 0


@dataclass
class Overview:
    by_group: Table
    by_session: Table
    sections: list[ThemeSection]
    theme_count: int
    coding_count: int


def _table(
    tree: Sequence[theme_service.ThemeNode],
    columns: list[tuple[int | None, str]],
    own: dict[CountKey, Count],
    rolled: dict[CountKey, Count],
    totals: dict[CountKey, Count],
) -> Table:
    def row(theme: Theme | None, label: str, source: dict[CountKey, Count], is_child: bool) -> Row:
        key = theme.id if theme is not None else None
        cells = [source.get((key, column), Count()) for column, _ in columns]
        total = Count()
        for cell in cells:
            total.add(cell)
        return Row(theme=theme, label=label, is_child=is_child, cells=cells, total=total)

    rows: list[Row] = []
    for node in tree:
        # A top-level theme counts its own codings and its sub-themes'.
        rows.append(row(node.theme, node.theme.name, rolled if node.children else own, False))
        for child in node.children:
            rows.append(row(child, child.name, own, True))
    return Table(columns=columns, rows=rows, totals=row(None, "All themes", totals, False))


async def _passages(
    db: AsyncSession, scope: Scope, filters: Filters
) -> dict[int, list[CodedPassage]]:
    """The most recent codings of each theme (EXCERPTS_PER_THEME at most)."""
    rank = (
        func.row_number()
        .over(partition_by=Coding.theme_id, order_by=(Coding.created_at.desc(), Coding.id.desc()))
        .label("rank")
    )
    ranked = coded(select(Coding.id.label("coding_id"), rank), scope, filters).subquery()
    query = (
        select(
            Coding,
            EvidenceItem.title,
            EvidenceItem.group_id,
            EvidenceItem.from_trio,
            Group.name,
            ProgrammeSession.title,
            User.display_name,
        )
        .join(ranked, ranked.c.coding_id == Coding.id)
        .join(EvidenceItem, EvidenceItem.id == Coding.item_id)
        .join(Group, Group.id == EvidenceItem.group_id)
        .outerjoin(ProgrammeSession, ProgrammeSession.id == EvidenceItem.session_id)
        .outerjoin(User, User.id == Coding.coder_id)
        .where(ranked.c.rank <= EXCERPTS_PER_THEME)
        .order_by(Coding.theme_id, Coding.created_at.desc(), Coding.id.desc())
    )
    out: dict[int, list[CodedPassage]] = {}
    for coding, title, group_id, from_trio, group_name, session_title, coder in (
        await db.execute(query)
    ).all():
        out.setdefault(coding.theme_id, []).append(
            CodedPassage(
                coding_id=coding.id,
                theme_id=coding.theme_id,
                item_id=coding.item_id,
                item_title=title,
                group_id=group_id,
                group_name=group_name,
                session_title=session_title or "",
                from_trio=bool(from_trio),
                source=coding.source,
                excerpt=coding.excerpt,
                memo=coding.memo,
                coder_name=coder or "A former member",
                coded_at=coding.created_at,
            )
        )
    return out


def _session_columns(
    scope: Scope, filters: Filters, totals: dict[CountKey, Count]
) -> list[tuple[int | None, str]]:
    none_column: tuple[int | None, str] = (None, "Not from a session")
    if filters.session == NO_SESSION:
        return [none_column]
    if filters.session is not None:
        return [(s.id, s.title) for s in scope.sessions if s.id == filters.session]
    columns: list[tuple[int | None, str]] = [(s.id, s.title) for s in scope.sessions]
    if any(dim is None for _, dim in totals):
        columns.append(none_column)
    return columns


async def build_overview(db: AsyncSession, *, scope: Scope, filters: Filters) -> Overview:
    tree = await theme_service.codebook(db, programme_id=scope.programme_id)
    rolled_key = func.coalesce(Theme.parent_id, Theme.id)
    tables: dict[str, Table] = {}
    for name, dimension in (("group", EvidenceItem.group_id), ("session", EvidenceItem.session_id)):
        own = await _counts(db, scope, filters, theme_key=Coding.theme_id, dimension=dimension)
        rolled = await _counts(db, scope, filters, theme_key=rolled_key, dimension=dimension)
        totals = await _counts(db, scope, filters, theme_key=None, dimension=dimension)
        if name == "group":
            columns: list[tuple[int | None, str]] = [
                (g.id, g.name)
                for g in scope.groups
                if filters.group_id is None or g.id == filters.group_id
            ]
        else:
            columns = _session_columns(scope, filters, totals)
        tables[name] = _table(tree, columns, own, rolled, totals)
    passages = await _passages(db, scope, filters)
    own_counts = await _counts(db, scope, filters, theme_key=Coding.theme_id, dimension=None)
    sections: list[ThemeSection] = []
    for node in tree:
        for theme, is_child in [(node.theme, False)] + [(c, True) for c in node.children]:
            sections.append(
                ThemeSection(
                    theme=theme,
                    label=theme_service.theme_label(theme, node.theme if is_child else None),
                    colour=theme_service.colour_of(theme.colour),
                    is_child=is_child,
                    passages=passages.get(theme.id, []),
                    total_codings=own_counts.get((theme.id, None), Count()).codings,
                )
            )
    return Overview(
        by_group=tables["group"],
        by_session=tables["session"],
        sections=sections,
        theme_count=sum(1 + len(n.children) for n in tree),
        coding_count=tables["group"].totals.total.codings,
    )


async def codebook_counts(db: AsyncSession, *, scope: Scope) -> dict[int, Count]:
    """Each theme's own counts (items, excerpts, codings) over the visible groups."""
    own = await _counts(db, scope, Filters(), theme_key=Coding.theme_id, dimension=None)
    return {theme_id: count for (theme_id, _), count in own.items() if theme_id is not None}
