"""The codings and the codebook as CSV files, for the groups a person may see.

Every cell goes through app/csv_export.py, so nothing a participant wrote can
run as a spreadsheet formula."""

from __future__ import annotations

from datetime import UTC

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.csv_export import to_csv
from app.evidence.models import Coding, EvidenceItem, EvidenceKind
from app.models import Group, ProgrammeSession, User
from app.themes import themes as theme_service
from app.themes.coding import SOURCES
from app.themes.overview import Count, Filters, Scope, codebook_counts, coded

CODINGS_HEADER = (
    "theme",
    "parent theme",
    "group",
    "session",
    "item id",
    "item title",
    "item kind",
    "from trio",
    "source",
    "excerpt",
    "memo",
    "coder",
    "coded at (UTC)",
    "item URL",
)
CODEBOOK_HEADER = ("theme", "parent", "description", "colour", "items coded", "excerpts coded")


def _kind_label(kind: str) -> str:
    try:
        return EvidenceKind(kind).label
    except ValueError:
        return kind


async def codings_csv(db: AsyncSession, *, scope: Scope, filters: Filters, base_url: str) -> str:
    """One row per coding (whole-item codings have an empty excerpt), by theme, group, time."""
    themes = await theme_service.list_themes(db, programme_id=scope.programme_id)
    by_id = {t.id: t for t in themes}
    labels = theme_service.labels(themes)
    tree_order = {
        theme.id: index
        for index, theme in enumerate(
            t for node in theme_service.build_tree(themes) for t in [node.theme, *node.children]
        )
    }
    group_order = {g.id: index for index, g in enumerate(scope.groups)}
    query = coded(
        select(Coding, EvidenceItem, Group.name, ProgrammeSession.title, User.display_name),
        scope,
        filters,
    )
    query = (
        query.join(Group, Group.id == EvidenceItem.group_id)
        .outerjoin(ProgrammeSession, ProgrammeSession.id == EvidenceItem.session_id)
        .outerjoin(User, User.id == Coding.coder_id)
    )
    rows = list((await db.execute(query)).all())
    rows.sort(
        key=lambda r: (
            tree_order.get(r[0].theme_id, len(tree_order)),
            group_order.get(r[1].group_id, len(group_order)),
            r[0].created_at,
            r[0].id,
        )
    )
    base = base_url.rstrip("/")
    out = []
    for coding, item, group_name, session_title, coder_name in rows:
        theme = by_id[coding.theme_id]
        parent = by_id.get(theme.parent_id) if theme.parent_id else None
        out.append(
            (
                labels[theme.id],
                parent.name if parent else "",
                group_name,
                session_title or "",
                item.id,
                item.title,
                _kind_label(item.kind),
                "yes" if item.from_trio else "no",
                SOURCES.get(coding.source or "", "The whole item"),
                coding.excerpt,
                coding.memo,
                coder_name or "A former member",
                coding.created_at.astimezone(UTC).isoformat(timespec="seconds"),
                f"{base}/programmes/{item.programme_id}/groups/{item.group_id}/evidence/{item.id}",
            )
        )
    return to_csv(CODINGS_HEADER, out)


async def codebook_csv(db: AsyncSession, *, scope: Scope) -> str:
    """The codebook, parents before their sub-themes, with counts over the visible groups."""
    tree = await theme_service.codebook(db, programme_id=scope.programme_id)
    counts = await codebook_counts(db, scope=scope)
    out = []
    for node in tree:
        for theme in [node.theme, *node.children]:
            count = counts.get(theme.id, Count())
            out.append(
                (
                    theme_service.theme_label(
                        theme, node.theme if theme is not node.theme else None
                    ),
                    node.theme.name if theme is not node.theme else "",
                    theme.description,
                    theme_service.colour_of(theme.colour).label,
                    count.items,
                    count.excerpts,
                )
            )
    return to_csv(CODEBOOK_HEADER, out)
