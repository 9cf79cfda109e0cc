"""Meta's WhatsApp Business Cloud API: the engine (`engine.py`), its Graph API client
(`graph.py`) and error mapping (`errors.py`), the webhook's verification and parsing
(`webhook.py`), the running instances by phone number (`directory.py`) and the media
types Meta accepts (`media.py`)."""

from actors.engines.cloud.directory import CloudDirectory, CloudEndpoint
from actors.engines.cloud.engine import CloudEngine
from actors.engines.cloud.graph import (
    META_GRAPH_URL,
    graph_url_problem,
    is_metas,
)

__all__ = [
    "META_GRAPH_URL",
    "CloudDirectory",
    "CloudEndpoint",
    "CloudEngine",
    "graph_url_problem",
    "is_metas",
]
