"""Storage on a MongoDB replica set: the event store (an eventsourcing persistence module on
pymongo), the read models and their queries, the webhook cursors, the doctor check."""

from storage.mongodb.provider import MongoStorage

__all__ = ["MongoStorage"]
