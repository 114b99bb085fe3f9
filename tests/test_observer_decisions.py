"""Deciding approvals: every transition, the rejected ones, concurrency, atomicity with the reply, expiry."""
import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from observer import decisions
from observer.expiry import EXPIRY_SCHEDULE_NAME, EXPIRY_TASK, expire_due_approvals
from observer.models import AppendOnlyError, Approval, ApprovalHistory, ApprovalStatus
from observer.permissions import APPROVERS_GROUP, ensure_approvers_group
from singularity.hitl.contracts import DecisionStatus
from singularity.messaging.pgmq import QueueNotFound
from singularity.messaging.queues import OBSERVER_DECISIONS, OBSERVER_HITL_REQUESTS, PROJECT_QUEUES

pytestmark = pytest.mark.django_db


def replies(queues):
    """The bodies on the decisions queue, oldest first, read without hiding them for long."""
    return [message.body for message in queues.read(OBSERVER_DECISIONS, vt=0, qty=100)]


def test_queue_names_pinned():
    assert OBSERVER_HITL_REQUESTS == "observer_hitl_requests"
    assert OBSERVER_DECISIONS == "observer_decisions"
    assert {OBSERVER_HITL_REQUESTS, OBSERVER_DECISIONS} <= set(PROJECT_QUEUES)


def test_closing_statuses_match_decisions():
    assert set(DecisionStatus.values) == set(ApprovalStatus.values) - {ApprovalStatus.PENDING}


def test_approve_records_everything(clean_queues, approver, make_approval):
    approval = make_approval()

    decided = decisions.approve(approval.pk, approver, reason="looks fine")

    assert decided.status == ApprovalStatus.APPROVED
    assert decided.decided_by == approver
    assert decided.decision_reason == "looks fine"
    assert decided.decided_at is not None
    last = approval.history.last()
    assert (last.from_status, last.to_status, last.actor, last.reason) == ("pending", "approved", approver, "looks fine")
    [reply] = replies(clean_queues)
    assert reply["request_id"] == str(approval.request_id)
    assert reply["decision"] == "approved"
    assert reply["decided_by"] == "alice"
    assert reply["reason"] == "looks fine"
    assert reply["answer"] == ""
    assert reply["decided_at"] == decided.decided_at.isoformat()


@pytest.mark.parametrize(
    "verb, kind, expected",
    [
        ("approve", "approval", "approved"),
        ("reject", "approval", "rejected"),
        ("cancel", "approval", "cancelled"),
        ("answer", "question", "answered"),
        ("reject", "question", "rejected"),
        ("cancel", "question", "cancelled"),
    ],
)
def test_each_transition(clean_queues, approver, make_approval, verb, kind, expected):
    approval = make_approval(type=kind, payload={"question": "Which region?"} if kind == "question" else {})

    decided = decisions.decide(approval.pk, decisions.ACTIONS[verb], approver, answer="eu-west")

    assert decided.status == expected
    assert [reply["decision"] for reply in replies(clean_queues)] == [expected]
    assert approval.history.filter(to_status=expected).count() == 1


def test_answer_is_sent(clean_queues, approver, make_approval):
    approval = make_approval(type="question", payload={"question": "Which region?"})

    decisions.answer(approval.pk, approver, "  eu-west  ")

    assert Approval.objects.get(pk=approval.pk).answer == "eu-west"
    assert replies(clean_queues)[0]["answer"] == "eu-west"


@pytest.mark.parametrize(
    "verb, kind, answer",
    [("approve", "question", ""), ("answer", "approval", "yes"), ("answer", "question", "   ")],
)
def test_invalid_decisions_rejected(clean_queues, approver, make_approval, verb, kind, answer):
    approval = make_approval(type=kind, payload={"question": "Which?"})

    with pytest.raises(decisions.InvalidDecision):
        decisions.decide(approval.pk, decisions.ACTIONS[verb], approver, answer=answer)

    assert Approval.objects.get(pk=approval.pk).status == ApprovalStatus.PENDING
    assert replies(clean_queues) == []


@pytest.mark.parametrize("second", ["approve", "reject", "cancel"])
def test_second_decision_changes_nothing(clean_queues, approver, make_approval, second):
    approval = make_approval()
    decisions.reject(approval.pk, approver, reason="first")

    with pytest.raises(decisions.AlreadyDecided) as caught:
        decisions.decide(approval.pk, decisions.ACTIONS[second], approver, reason="second")

    assert "already rejected by alice" in str(caught.value)
    current = Approval.objects.get(pk=approval.pk)
    assert (current.status, current.decision_reason) == ("rejected", "first")
    assert approval.history.count() == 2
    assert len(replies(clean_queues)) == 1


def test_user_without_permission(clean_queues, make_approval, django_user_model):
    staff = django_user_model.objects.create_user("bob", password="x", is_staff=True)
    approval = make_approval()

    with pytest.raises(PermissionDenied):
        decisions.approve(approval.pk, staff)

    assert Approval.objects.get(pk=approval.pk).status == ApprovalStatus.PENDING
    assert replies(clean_queues) == []


def test_reply_failure_rolls_back(clean_queues, approver, make_approval):
    approval = make_approval(reply_to="observer_missing_reply_queue")

    with pytest.raises(QueueNotFound):
        decisions.approve(approval.pk, approver)

    current = Approval.objects.get(pk=approval.pk)
    assert current.status == ApprovalStatus.PENDING
    assert current.decided_by is None
    assert current.decided_at is None
    assert approval.history.count() == 1


def test_decision_after_deadline_expires(clean_queues, approver, make_approval):
    approval = make_approval(expires_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(decisions.AlreadyDecided) as caught:
        decisions.approve(approval.pk, approver)

    assert "already expired" in str(caught.value)
    assert Approval.objects.get(pk=approval.pk).status == ApprovalStatus.EXPIRED
    [reply] = replies(clean_queues)
    assert reply["decision"] == "expired"
    assert reply["decided_by"] is None


def test_expire_due_closes_only_due(clean_queues, make_approval):
    now = timezone.now()
    due = make_approval(expires_at=now - timedelta(minutes=1))
    later = make_approval(expires_at=now + timedelta(minutes=10))
    forever = make_approval(expires_at=None)

    assert expire_due_approvals() == 1

    assert Approval.objects.get(pk=due.pk).status == ApprovalStatus.EXPIRED
    assert Approval.objects.get(pk=later.pk).status == ApprovalStatus.PENDING
    assert Approval.objects.get(pk=forever.pk).status == ApprovalStatus.PENDING
    history = due.history.last()
    assert (history.to_status, history.actor) == ("expired", None)
    assert [reply["decision"] for reply in replies(clean_queues)] == ["expired"]


def test_expire_due_skips_failing_reply(clean_queues, make_approval):
    past = timezone.now() - timedelta(minutes=1)
    broken = make_approval(expires_at=past, reply_to="observer_missing_reply_queue")
    fine = make_approval(expires_at=past)

    assert decisions.expire_due() == 1

    assert Approval.objects.get(pk=broken.pk).status == ApprovalStatus.PENDING
    assert Approval.objects.get(pk=fine.pk).status == ApprovalStatus.EXPIRED


def test_expire_not_due_is_noop(clean_queues, make_approval):
    approval = make_approval(expires_at=timezone.now() + timedelta(minutes=5))

    assert decisions.expire(approval.pk) is None
    assert replies(clean_queues) == []


def test_history_save_rejected(make_approval):
    entry = make_approval().history.get()

    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()


def test_history_sql_update_rejected(make_approval):
    entry = make_approval().history.get()

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ApprovalHistory.objects.filter(pk=entry.pk).update(reason="rewritten")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM observer_approvalhistory WHERE id = %s", [entry.pk])


def test_approvers_group_has_permission():
    group = Group.objects.get(name=APPROVERS_GROUP)

    codenames = set(group.permissions.values_list("codename", flat=True))

    assert {"decide_approval", "view_approval", "view_approvalhistory"} <= codenames


def test_expiry_schedule_exists():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name=EXPIRY_SCHEDULE_NAME)

    assert schedule.func == EXPIRY_TASK
    assert schedule.schedule_type == Schedule.MINUTES
    assert schedule.minutes == 1
    assert schedule.repeats == -1


@pytest.mark.django_db(transaction=True)
def test_two_deciders_one_wins(clean_queues, make_approval, django_user_model):
    group = ensure_approvers_group(Group, Permission, ContentType)
    users = []
    for name in ("carol", "dave"):
        user = django_user_model.objects.create_user(name, password="x")
        user.groups.add(group)
        users.append(django_user_model.objects.get(pk=user.pk))
    approval = make_approval()
    barrier = threading.Barrier(2)
    outcomes = {}

    def decide(user, verb):
        barrier.wait()
        try:
            decisions.decide(approval.pk, decisions.ACTIONS[verb], user)
            outcomes[user.username] = "won"
        except decisions.AlreadyDecided:
            outcomes[user.username] = "already decided"
        finally:
            connection.close()

    threads = [
        threading.Thread(target=decide, args=(users[0], "approve")),
        threading.Thread(target=decide, args=(users[1], "reject")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert sorted(outcomes.values()) == ["already decided", "won"]
    winner = next(name for name, outcome in outcomes.items() if outcome == "won")
    current = Approval.objects.get(pk=approval.pk)
    assert current.decided_by.username == winner
    assert approval.history.exclude(to_status="pending").count() == 1
    assert len(replies(clean_queues)) == 1
