"""Where everything is kept: one subpackage per provider behind one interface.

`storage.provider.StorageProvider` is the interface; `storage.sqlite` and `storage.mongodb`
each hold everything their provider does (event store recorder, read-model store and
queries, webhook cursors, health and doctor checks). `app.storage.open_storage` picks one
from the settings; nothing else knows which one runs. Driver errors never leave this
package: they are eventsourcing's persistence errors.
"""
