"""Every read model the product keeps, in the order they must see each event."""

from __future__ import annotations

from projections.activity import Activity
from projections.base import ReadModelProjection
from projections.chats import Chats
from projections.deliveries import Deliveries
from projections.directory import Directory
from projections.groups import Groups
from projections.messages import Messages
from projections.rows import ReadModels, Table
from projections.usage import Usage

# Usage reads the instances table that Directory writes, so Directory comes first; Chats
# reads the groups table (a group chat's name), so Groups comes before it.
PROJECTIONS: tuple[type[ReadModelProjection], ...] = (
    Directory,
    Messages,
    Groups,
    Chats,
    Activity,
    Usage,
    Deliveries,
)
NAMES = tuple(p.name for p in PROJECTIONS)
TRACKING_NAME = "read-models"
# Bump VERSION when a projection writes different rows; a read-model file made under
# another signature is rebuilt from the event store before the server serves it.
VERSION = 7
SIGNATURE = f"{VERSION}:{','.join(NAMES)}"


def build(store: ReadModels) -> list[ReadModelProjection]:
    return [projection(store) for projection in PROJECTIONS]


def tables(projection: type[ReadModelProjection]) -> list[str]:
    """The names of the tables a projection owns."""
    return [table.name for table in projection.tables]


TABLES: tuple[Table, ...] = tuple(t for p in PROJECTIONS for t in p.tables)
