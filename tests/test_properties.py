"""Property tests: replay reproduces state; live read models equal rebuilt ones."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.eventstore import EventStore, sqlite_env
from app.rebuild import rebuild
from domain.instance import Instance, InstanceError
from projections import catalog
from projections.runner import LiveProjections
from projections.store import ReadModelStore

PHONES = st.sampled_from(["15550000001@s.whatsapp.net", "15550000002@s.whatsapp.net", "120363000000000001@g.us"])
COMMANDS = st.one_of(
    st.tuples(st.just("request"), st.sampled_from(["start", "reconnect"])),
    st.tuples(st.just("qr"), st.text(min_size=1, max_size=20)),
    st.tuples(st.just("open"), st.sampled_from(["15550000009", None])),
    st.tuples(st.just("close"), st.sampled_from(["lost", "dead_session"]), st.booleans()),
    st.tuples(st.just("logout")),
    st.tuples(st.just("sent"), PHONES, st.text(max_size=30), st.sampled_from([None, "k1", "k2", "k3"])),
    st.tuples(st.just("received"), PHONES, st.text(max_size=30), st.sampled_from([None, "Zed"])),
    st.tuples(st.just("status"), st.sampled_from(["delivered", "read", "played"])),
    st.tuples(st.just("update"), st.text(min_size=1, max_size=10), st.booleans()),
    st.tuples(st.just("expire_qr")),
    st.tuples(st.just("ban"), st.integers(min_value=0, max_value=10**10)),
)


def apply(instance: Instance, command: tuple[Any, ...], counter: list[int]) -> None:
    kind = command[0]
    counter[0] += 1
    n = counter[0]
    if kind == "request":
        instance.request_connection(command[1])
    elif kind == "qr":
        instance.receive_qr(command[1])
    elif kind == "open":
        instance.open_connection(command[1], "Me")
    elif kind == "close":
        instance.close_connection(command[1], command[2])
    elif kind == "logout":
        instance.log_out("logout")
    elif kind == "sent":
        if instance.sent_for_key(command[3]) is None:
            instance.record_sent(f"M{n}", command[1], "text", command[2], None, n, command[3])
    elif kind == "received":
        instance.record_received(f"R{n}", command[1], command[3], "text", command[2], None, n)
    elif kind == "status":
        instance.record_status(f"M{n - 1}", command[1], "15550000001@s.whatsapp.net", True)
    elif kind == "update":
        instance.update({"name": command[1], "webhook": {"enabled": command[2]}})
    elif kind == "expire_qr":
        instance.expire_qr()
    elif kind == "ban":
        instance.ban("SEND_TO_TOO_MANY_PEOPLE", command[1])


def state(instance: Instance) -> dict[str, Any]:
    return {k: v for k, v in vars(instance).items() if k != "_pending_events"}


@settings(max_examples=150, deadline=None)
@given(st.lists(COMMANDS, max_size=40))
def test_any_valid_command_sequence_replays_to_the_same_state(commands: list[tuple[Any, ...]]) -> None:
    instance = Instance(user_id="u", name="P", description="", engine="sandbox", webhook={}, engine_settings={})
    counter = [0]
    for command in commands:
        # Refused commands change nothing (e.g. a send while not connected).
        with contextlib.suppress(InstanceError):
            apply(instance, command, counter)
    events = instance.collect_events()
    replayed = None
    for event in events:
        replayed = event.mutate(replayed)
    assert replayed is not None
    assert state(replayed) == state(instance)


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    db = sqlite3.connect(path)
    try:
        tables = [t for (t,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name != 'meta' ORDER BY name")]
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        db.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(COMMANDS, max_size=15), min_size=1, max_size=4))
def test_read_models_built_live_equal_read_models_rebuilt(tmp_path_factory: Any, scripts: list[list[tuple[Any, ...]]]) -> None:
    root = tmp_path_factory.mktemp("property")
    store = EventStore(env=sqlite_env(str(root / "es.db")))
    live = ReadModelStore(root / "read.db")
    projections = LiveProjections(store, catalog.build(live), catalog.TRACKING_NAME)
    projections.start()
    try:
        for number, script in enumerate(scripts):
            instance = Instance(user_id="u", name=f"I{number}", description="", engine="sandbox",
                                webhook={}, engine_settings={})
            counter = [0]
            for command in script:
                with contextlib.suppress(InstanceError):
                    apply(instance, command, counter)
                store.save(instance)  # saved often: many small transactions, like the server
        head = store.recorder.max_notification_id() or 0
        assert projections.wait(head, timeout=10)
        before = dump(live.current_file())
        projections.stop()
        rebuild(store, live)
        assert dump(live.current_file()) == before
    finally:
        projections.stop()
        live.close()
        store.close()
