"""Property tests: replay reproduces state; live read models equal rebuilt ones."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.eventstore import EventStore
from domain.instance import Instance, InstanceError
from domain.usage import UsageLedger
from domain.user import User
from domain.webhook import WebhookLog
from projections import catalog
from projections.rebuild import rebuild
from projections.runner import LiveProjections
from storage.sqlite.events import environment as sqlite_env
from tests.places import place

GROUP = "120363000000000001@g.us"
LID = "900000000000001@lid"  # the LID of 15550000001
PHONES = st.sampled_from(["15550000001@s.whatsapp.net", "15550000002@s.whatsapp.net", GROUP, LID])
PEOPLE = st.sampled_from(["15550000001@s.whatsapp.net", "15550000002@s.whatsapp.net", LID])
# Messages named by later events: some exist by then, some never will.
MESSAGES = st.sampled_from([f"{kind}{n}" for kind in "MR" for n in range(1, 7)])
GROUP_INFO = {
    "id": GROUP,
    "subject": "Team",
    "description": "",
    "owner": "15550000009@s.whatsapp.net",
    "announce": False,
    "locked": False,
    "created_at": 1_700_000_000,
    "participants": [
        {
            "id": "15550000009@s.whatsapp.net",
            "phone": "15550000009",
            "lid": None,
            "role": "superadmin",
        },
        {"id": "15550000001@s.whatsapp.net", "phone": "15550000001", "lid": None, "role": "member"},
    ],
}
COMMANDS = st.one_of(
    st.tuples(st.just("request"), st.sampled_from(["start", "reconnect"])),
    st.tuples(st.just("qr"), st.text(min_size=1, max_size=20)),
    st.tuples(st.just("open"), st.sampled_from(["15550000009", None])),
    st.tuples(st.just("close"), st.sampled_from(["lost", "dead_session"]), st.booleans()),
    st.tuples(st.just("logout")),
    st.tuples(
        st.just("sent"), PHONES, st.text(max_size=30), st.sampled_from([None, "k1", "k2", "k3"])
    ),
    st.tuples(st.just("received"), PHONES, st.text(max_size=30), st.sampled_from([None, "Zed"])),
    st.tuples(st.just("status"), st.sampled_from(["delivered", "read", "played"])),
    st.tuples(st.just("update"), st.text(min_size=1, max_size=10), st.booleans()),
    st.tuples(st.just("expire_qr")),
    st.tuples(st.just("ban"), st.integers(min_value=0, max_value=10**10)),
    # Everything else WhatsApp does.
    st.tuples(st.just("poll"), PHONES, st.booleans()),
    st.tuples(st.just("group_received"), PEOPLE, st.text(max_size=10)),
    st.tuples(st.just("receipt"), PEOPLE, st.sampled_from(["delivered", "read"])),
    st.tuples(st.just("react"), MESSAGES, PEOPLE, st.sampled_from(["👍", "❤️", ""])),
    st.tuples(st.just("edit"), MESSAGES, st.text(max_size=10)),
    st.tuples(st.just("revoke"), MESSAGES),
    st.tuples(st.just("vote"), MESSAGES, PEOPLE, st.sampled_from([[], ["a"], ["a", "b"]])),
    st.tuples(st.just("chat_read"), PHONES),
    st.tuples(st.just("learn")),
    st.tuples(st.just("group"), st.sampled_from(["created", "joined", "left"])),
    st.tuples(
        st.just("participants"), st.sampled_from(["add", "remove", "promote", "demote"]), PEOPLE
    ),
    st.tuples(st.just("settings"), st.text(min_size=1, max_size=8), st.booleans()),
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
    else:
        apply_more(instance, command, n)


def apply_more(instance: Instance, command: tuple[Any, ...], n: int) -> None:
    """Reactions, edits, revocations, polls, groups, read marks and identities."""
    kind = command[0]
    if kind == "poll":
        poll = {"question": "Q?", "options": ["a", "b"], "multipleAnswers": command[2]}
        recipients = ["15550000001@s.whatsapp.net"] if command[1] == GROUP else []
        instance.record_sent(
            f"M{n}", command[1], "poll", "Q?", None, n, None, data={"poll": poll},
            recipients=recipients,
        )  # fmt: skip
    elif kind == "group_received":
        instance.record_received(
            f"R{n}", command[1], None, "text", command[2], None, n, chat=GROUP,
            phone=None if command[1] == LID else command[1].split("@")[0],
        )  # fmt: skip
    elif kind == "receipt":
        instance.record_status(f"M{n - 1}", command[2], GROUP, True, participant=command[1])
    elif kind == "react":
        mine = command[2] == "15550000002@s.whatsapp.net"
        instance.record_reaction(
            message_id=command[1], chat=command[2], sender=None if mine else command[2],
            from_me=mine, emoji=command[3], phone=None, lid=None, reacted_at=n,
        )  # fmt: skip
    elif kind == "edit":
        instance.record_edit(
            message_id=command[1], chat=LID, sender=None, from_me=True, body=command[2],
            phone=None, lid=None, edited_at=n,
        )  # fmt: skip
    elif kind == "revoke":
        instance.record_revocation(
            message_id=command[1], chat=LID, sender=None, from_me=True, phone=None, lid=None,
            revoked_at=n,
        )  # fmt: skip
    elif kind == "vote":
        instance.record_vote(
            message_id=command[1], chat=command[2], voter=command[2], from_me=False,
            options=command[3], phone=None, lid=None, voted_at=n,
        )  # fmt: skip
    elif kind == "chat_read":
        instance.record_read(chat=command[1], message_ids=[f"R{n - 1}"], phone=None, lid=None)
    elif kind == "learn":
        instance.learn_identity(phone="15550000001", lid=LID)
    elif kind == "group":
        if command[1] == "created":
            instance.record_group_created(group=GROUP_INFO)
        elif command[1] == "joined":
            instance.record_group_joined(group=GROUP_INFO, reason="added", by=None)
        else:
            instance.record_group_left(group_id=GROUP, reason="left", by=None)
    elif kind == "participants":
        person = {"id": command[2], "phone": None, "lid": None}
        instance.record_group_participants(
            group_id=GROUP, action=command[1], participants=[person], by=None
        )
    elif kind == "settings":
        changes = {"subject": command[1], "locked": command[2]}
        instance.record_group_settings(group_id=GROUP, changes=changes, by=None)


def state(instance: Instance) -> dict[str, Any]:
    return {k: v for k, v in vars(instance).items() if k != "_pending_events"}


@settings(max_examples=150, deadline=None)
@given(st.lists(COMMANDS, max_size=40))
def test_any_valid_command_sequence_replays_to_the_same_state(
    commands: list[tuple[Any, ...]],
) -> None:
    instance = Instance(
        user_id="u", name="P", description="", engine="sandbox", webhook={}, engine_settings={}
    )
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


def background(user: User) -> list[Any]:
    """Aggregates for the other read models: a user's life, webhook outcomes, API calls."""
    user.change_limits({"maxInstances": 3})
    user.change_limits({"maxMessagesPerDay": 100})
    user.update_profile("Zed", "Zee")
    log = WebhookLog("none")  # an instance nobody owns: usage under no user
    log.delivered(
        instance_id="none",
        position=1,
        event_type="message_sent",
        delivery_id="d1",
        attempts=1,
        status_code=200,
        replay=False,
    )
    log.failed(
        instance_id="none",
        position=2,
        event_type="message_sent",
        delivery_id="d2",
        attempts=3,
        status_code=None,
        error="refused",
        replay=True,
    )
    ledger = UsageLedger()
    ledger.record(
        [{"userId": str(user.id), "instanceId": None, "day": "2026-01-01", "apiCalls": 4}]
    )
    return [user, log, ledger]


def run_scripts(store: EventStore, scripts: list[list[tuple[Any, ...]]]) -> None:
    user = User(
        email="p@example.com",
        password_hash="x",
        first_name="P",
        last_name="Q",
        role="user",
        api_key_hash="h",
        api_key_sealed="s",
    )
    store.save(*background(user))
    for number, script in enumerate(scripts):
        instance = Instance(
            user_id=str(user.id),
            name=f"I{number}",
            description="",
            engine="sandbox",
            webhook={},
            engine_settings={},
        )
        log = WebhookLog(str(instance.id))
        counter = [0]
        for command in script:
            with contextlib.suppress(InstanceError):
                apply(instance, command, counter)
            if counter[0] % 5 == 0:
                log.delivered(
                    instance_id=str(instance.id),
                    position=counter[0],
                    event_type="message_sent",
                    delivery_id=f"d{counter[0]}",
                    attempts=1,
                    status_code=200,
                    replay=False,
                )
            store.save(instance, log)  # saved often: many small transactions, like the server


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(COMMANDS, max_size=15), min_size=1, max_size=4))
def test_read_models_built_live_equal_read_models_rebuilt(
    provider: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: Any,
    scripts: list[list[tuple[Any, ...]]],
) -> None:
    # A place of its own for each example; the events on SQLite (fast: they are not what
    # is tested here), the read models on the provider.
    root = tmp_path_factory.mktemp("property")
    with place(request, provider, root) as storage:
        store = EventStore(env=sqlite_env(str(root / "es.db")))
        live = storage.read_models()
        projections = LiveProjections(store, catalog.build(live), catalog.TRACKING_NAME)
        projections.start()
        try:
            run_scripts(store, scripts)
            head = store.recorder.max_notification_id() or 0
            assert projections.wait(head, timeout=20)
            before = storage.dump(meta=False)
            projections.stop()
            rebuild(store, live)
            assert storage.dump(meta=False) == before
            assert not storage.leftovers()
        finally:
            projections.stop()
            store.close()


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(COMMANDS, max_size=15), min_size=1, max_size=3))
def test_every_provider_makes_the_same_rows(
    request: pytest.FixtureRequest,
    tmp_path_factory: Any,
    scripts: list[list[tuple[Any, ...]]],
) -> None:
    root = tmp_path_factory.mktemp("providers")
    with (
        place(request, "sqlite", root / "sqlite") as on_sqlite,
        place(request, "mongodb", root / "mongodb") as on_mongodb,
    ):
        places = (on_sqlite, on_mongodb)
        store = EventStore(env=sqlite_env(str(root / "es.db")))
        stores = [p.read_models() for p in places]
        runners = [LiveProjections(store, catalog.build(s), catalog.TRACKING_NAME) for s in stores]
        for runner in runners:
            runner.start()
        try:
            run_scripts(store, scripts)
            head = store.recorder.max_notification_id() or 0
            assert all(runner.wait(head, timeout=20) for runner in runners)
            sqlite, mongodb = (p.dump(meta=False) for p in places)
            assert sqlite == mongodb
            assert sqlite["usage"] and sqlite["deliveries"] and sqlite["messages"] is not None
        finally:
            for runner in runners:
                runner.stop()
            store.close()
