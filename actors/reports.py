"""What each engine report about messages, groups and people records on the instance.

The instance actor handles its connection's reports itself (QR codes, connects, drops);
everything else an engine reports is one domain event, written here once for every
engine.
"""

from __future__ import annotations

from collections import OrderedDict

from actors.engines.base import (
    Contacts,
    Edit,
    EngineEvent,
    GroupJoined,
    GroupLeft,
    GroupParticipants,
    GroupSettings,
    IdentityPair,
    Inbound,
    MediaSaved,
    Notice,
    PollVote,
    Presence,
    Reaction,
    Receipt,
    Revocation,
    SentElsewhere,
    Undecryptable,
)
from domain.instance import Instance

IDENTITY_MEMORY = 4096


class KnownIdentities:
    """Phone/LID pairs this actor has recorded lately, so that a pair that every message
    of a chat carries is recorded once, not once per message. After a restart a pair may
    be recorded again: learning it twice changes nothing."""

    def __init__(self, size: int = IDENTITY_MEMORY) -> None:
        self._size = size
        self._pairs: OrderedDict[tuple[str, str], None] = OrderedDict()

    def learn(self, instance: Instance, phone: str | None, lid: str | None) -> None:
        """Record IdentityLearnt for a pair not recorded lately (both must be known)."""
        if not phone or not lid:
            return
        pair = (phone, lid)
        if pair in self._pairs:
            self._pairs.move_to_end(pair)
            return
        self._pairs[pair] = None
        if len(self._pairs) > self._size:
            self._pairs.popitem(last=False)
        instance.learn_identity(phone=phone, lid=lid)


def record(instance: Instance, report: EngineEvent, known: KnownIdentities) -> bool:
    """Record what `report` says as events on `instance`; False if it is not one of the
    reports handled here."""
    match report:
        case Inbound() as m:
            instance.record_received(
                message_id=m.message_id,
                sender=m.sender,
                push_name=m.push_name,
                message_type=m.message_type,
                body=m.body,
                media=m.media,
                received_at=m.timestamp,
                data=m.data,
                bsuid=m.bsuid,
                username=m.username,
                chat=m.chat,
                quoted_message_id=m.quoted_message_id,
                mentions=list(m.mentions),
                phone=m.phone,
                lid=m.lid,
                spool_seq=m.spool_seq,
            )
            known.learn(instance, m.phone, m.lid)
        case SentElsewhere() as m:
            instance.record_sent(
                message_id=m.message_id,
                to=m.to,
                message_type=m.message_type,
                body=m.body,
                media=m.media,
                sent_at=m.timestamp,
                idempotency_key=None,
                origin=m.origin,
                spool_seq=m.spool_seq,
            )
        case Undecryptable() as m:
            instance.record_undecryptable(
                message_id=m.message_id,
                sender=m.sender,
                participant=m.participant,
                phone=m.phone,
                lid=m.lid,
                unavailable=m.unavailable,
                received_at=m.timestamp,
                spool_seq=m.spool_seq,
            )
            known.learn(instance, m.phone, m.lid)
        case MediaSaved(message_id, media, spool_seq):
            instance.record_media(message_id, media, spool_seq)
        case Receipt() as r:
            instance.record_status(
                r.message_id,
                r.status,
                r.remote_jid,
                from_me=True,
                error=r.error,
                participant=r.participant,
                phone=r.phone,
                lid=r.lid,
                spool_seq=r.spool_seq,
            )
        case Notice(kind, details):
            instance.receive_notice(kind, details)
        case Contacts(contacts):
            instance.sync_contacts(contacts)
        case Reaction() as r:
            instance.record_reaction(
                message_id=r.message_id,
                chat=r.chat,
                sender=r.sender,
                from_me=r.from_me,
                emoji=r.emoji,
                phone=r.phone,
                lid=r.lid,
                reacted_at=r.timestamp,
            )
            known.learn(instance, r.phone, r.lid)
        case Edit() as e:
            instance.record_edit(
                message_id=e.message_id,
                chat=e.chat,
                sender=e.sender,
                from_me=e.from_me,
                body=e.body,
                phone=e.phone,
                lid=e.lid,
                edited_at=e.timestamp,
            )
        case Revocation() as r:
            instance.record_revocation(
                message_id=r.message_id,
                chat=r.chat,
                sender=r.sender,
                from_me=r.from_me,
                phone=r.phone,
                lid=r.lid,
                revoked_at=r.timestamp,
            )
        case PollVote() as v:
            instance.record_vote(
                message_id=v.message_id,
                chat=v.chat,
                voter=v.voter,
                from_me=v.from_me,
                options=list(v.options),
                phone=v.phone,
                lid=v.lid,
                voted_at=v.timestamp,
            )
            known.learn(instance, v.phone, v.lid)
        case GroupJoined(group, reason, by):
            instance.record_group_joined(group=group.describe(), reason=reason, by=by)
            for p in group.participants:
                known.learn(instance, p.phone, p.lid)
        case GroupLeft(group_id, reason, by):
            instance.record_group_left(group_id=group_id, reason=reason, by=by)
        case GroupParticipants(group_id, action, participants, by):
            instance.record_group_participants(
                group_id=group_id,
                action=action,
                participants=[{"id": p.id, "phone": p.phone, "lid": p.lid} for p in participants],
                by=by,
            )
            for p in participants:
                known.learn(instance, p.phone, p.lid)
        case GroupSettings(group_id, changes, by):
            instance.record_group_settings(group_id=group_id, changes=dict(changes), by=by)
        case Presence() as p:
            if instance.wants_presence:
                instance.record_presence(
                    jid=p.jid, state=p.state, phone=p.phone, lid=p.lid, last_seen=p.last_seen
                )
            known.learn(instance, p.phone, p.lid)
        case IdentityPair(phone, lid):
            known.learn(instance, phone, lid)
        case _:
            return False
    return True
