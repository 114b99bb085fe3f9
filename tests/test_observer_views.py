"""The /observer/ pages: permissions, CSRF, escaping, decisions with and without htmx, the polling partial."""
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from observer.models import Approval

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
SCRIPT = "<script>alert('x')</script>"


@pytest.fixture
def approver_client(approver):
    client = Client()
    client.force_login(approver)
    return client


@pytest.fixture
def staff_client(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_user("bob", password="x", is_staff=True))
    return client


def decide_url(approval):
    return reverse("observer:decide", args=[approval.pk])


def test_anonymous_list_redirects(client):
    response = client.get(reverse("observer:queue"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("observer:login"))


def test_anonymous_post_forbidden(client, make_approval):
    approval = make_approval()

    response = client.post(decide_url(approval), {"action": "approve"})

    assert response.status_code == 403
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_staff_without_permission(staff_client, make_approval):
    approval = make_approval()

    assert staff_client.get(reverse("observer:queue")).status_code == 403
    assert staff_client.get(reverse("observer:detail", args=[approval.pk])).status_code == 403
    assert staff_client.post(decide_url(approval), {"action": "approve"}).status_code == 403
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_viewer_sees_no_controls(django_user_model, make_approval):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("vera", password="x")
    viewer.user_permissions.add(Permission.objects.get(codename="view_approval"))
    client = Client()
    client.force_login(viewer)
    approval = make_approval()

    page = client.get(reverse("observer:queue"))
    detail = client.get(reverse("observer:detail", args=[approval.pk]))

    assert page.status_code == 200
    assert 'value="approve"' not in page.content.decode()
    assert 'value="approve"' not in detail.content.decode()
    assert client.post(decide_url(approval), {"action": "approve"}).status_code == 403


def test_login_page_signs_in(client, approver):
    response = client.post(reverse("observer:login"), {"username": "alice", "password": "approver-pass-1"})

    assert response.status_code == 302
    assert client.get(reverse("observer:queue")).status_code == 200


def test_queue_lists_pending(approver_client, make_approval):
    pending = make_approval(summary="Rotate keys")
    make_approval(summary="Old one", status="approved")

    response = approver_client.get(reverse("observer:queue"))

    assert response.status_code == 200
    assert f'id="approval-row-{pending.pk}"' in response.content.decode()
    assert "Rotate keys" in response.content.decode()
    assert "Old one" not in response.content.decode()
    assert 'hx-trigger="every 1s"' in response.content.decode()


def test_status_filter(approver_client, make_approval):
    make_approval(summary="Rotate keys")
    make_approval(summary="Old one", status="approved")

    response = approver_client.get(reverse("observer:queue"), {"status": "approved"})

    assert "Old one" in response.content.decode()
    assert "Rotate keys" not in response.content.decode()


def test_polling_partial(approver_client, make_approval):
    approval = make_approval(summary="Fresh request")

    response = approver_client.get(reverse("observer:rows"), {"status": "pending"}, **HTMX)

    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<tbody id="approval-rows"')
    assert f'id="approval-row-{approval.pk}"' in body
    assert "<html" not in body


def test_polling_partial_expires_on_read(approver_client, make_approval, clean_queues):
    approval = make_approval(expires_at=timezone.now() - timedelta(seconds=1))

    response = approver_client.get(reverse("observer:rows"), **HTMX)

    assert f'id="approval-row-{approval.pk}"' not in response.content.decode()
    assert Approval.objects.get(pk=approval.pk).status == "expired"


def test_detail_full_and_partial(approver_client, make_approval):
    approval = make_approval(metadata={"ticket": "OPS-7"}, expires_at=timezone.now() + timedelta(minutes=5))

    full = approver_client.get(reverse("observer:detail", args=[approval.pk]))
    partial = approver_client.get(reverse("observer:detail", args=[approval.pk]), **HTMX)

    assert "<html" in full.content.decode()
    assert "<html" not in partial.content.decode()
    for body in (full.content.decode(), partial.content.decode()):
        assert "OPS-7" in body
        assert "data-expires-at=" in body
        assert 'value="approve"' in body


def test_approve_without_javascript(approver_client, approver, make_approval, clean_queues):
    approval = make_approval()

    response = approver_client.post(decide_url(approval), {"action": "approve", "reason": "ok"}, follow=True)

    current = Approval.objects.get(pk=approval.pk)
    assert current.status == "approved"
    assert current.decided_by == approver
    assert response.redirect_chain[-1][0] == reverse("observer:detail", args=[approval.pk])
    assert "The decision was sent to the agent" in response.content.decode()


def test_approve_from_row_htmx(approver_client, make_approval, clean_queues):
    approval = make_approval()

    response = approver_client.post(
        decide_url(approval), {"action": "approve"}, HTTP_HX_TARGET=f"approval-row-{approval.pk}", **HTMX
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert '<div id="messages" class="messages" role="status" aria-live="polite" hx-swap-oob="true">' in body
    assert f'<tr id="approval-row-{approval.pk}" class="status-approved" hx-swap-oob="true">' in body
    assert "The decision was sent to the agent" in body
    assert Approval.objects.get(pk=approval.pk).status == "approved"


def test_answer_from_panel_htmx(approver_client, make_approval, clean_queues):
    approval = make_approval(type="question", payload={"question": "Which region?"})

    response = approver_client.post(
        decide_url(approval), {"action": "answer", "answer": "eu-west"}, HTTP_HX_TARGET="detail-panel", **HTMX
    )

    body = response.content.decode()
    assert 'class="approval"' in body
    assert "Answered" in body
    assert Approval.objects.get(pk=approval.pk).answer == "eu-west"


def test_declined_question_message(approver_client, make_approval, clean_queues):
    approval = make_approval(type="question", summary="Which file?", payload={"question": "Which file?"})

    response = approver_client.post(decide_url(approval), {"action": "reject"}, follow=True)

    assert "Declined “Which file?”. The decision was sent to the agent." in response.content.decode()


@pytest.mark.parametrize("verb", ["reject", "cancel"])
def test_reject_and_cancel(approver_client, make_approval, clean_queues, verb):
    approval = make_approval()

    approver_client.post(decide_url(approval), {"action": verb})

    assert Approval.objects.get(pk=approval.pk).status == {"reject": "rejected", "cancel": "cancelled"}[verb]


def test_answer_required(approver_client, make_approval, clean_queues):
    approval = make_approval(type="question", payload={"question": "Which region?"})

    response = approver_client.post(decide_url(approval), {"action": "answer", "answer": ""}, **HTMX)

    assert "needs an answer" in response.content.decode()
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_already_decided_message(approver_client, make_approval, clean_queues):
    approval = make_approval()
    approver_client.post(decide_url(approval), {"action": "reject"})

    response = approver_client.post(decide_url(approval), {"action": "approve"}, follow=True)

    assert "already rejected by alice" in response.content.decode()
    assert Approval.objects.get(pk=approval.pk).status == "rejected"


def test_already_decided_message_htmx(approver_client, make_approval, clean_queues):
    approval = make_approval()
    approver_client.post(decide_url(approval), {"action": "reject"})

    response = approver_client.post(decide_url(approval), {"action": "approve"}, **HTMX)

    assert response.status_code == 200
    assert "already rejected by alice" in response.content.decode()


def test_invalid_action_rejected(approver_client, make_approval):
    approval = make_approval()

    response = approver_client.post(decide_url(approval), {"action": "delete"})

    assert response.status_code == 400
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_get_on_decide_not_allowed(approver_client, make_approval):
    assert approver_client.get(decide_url(make_approval())).status_code == 405


def test_csrf_required(approver, make_approval, clean_queues):
    client = Client(enforce_csrf_checks=True)
    client.force_login(approver)
    approval = make_approval()

    refused = client.post(decide_url(approval), {"action": "approve"})
    page = client.get(reverse("observer:detail", args=[approval.pk]))
    token = page.context["csrf_token"]
    accepted = client.post(decide_url(approval), {"action": "approve", "csrfmiddlewaretoken": str(token)})

    assert refused.status_code == 403
    assert accepted.status_code == 302
    assert Approval.objects.get(pk=approval.pk).status == "approved"


def test_agent_text_escaped(approver_client, make_approval):
    approval = make_approval(
        agent_id=SCRIPT,
        task_type=SCRIPT,
        summary=SCRIPT,
        payload={"diff": f"+{SCRIPT}\n-old", "note": SCRIPT},
        metadata={"x": SCRIPT},
    )

    pages = [
        approver_client.get(reverse("observer:queue")),
        approver_client.get(reverse("observer:rows"), **HTMX),
        approver_client.get(reverse("observer:detail", args=[approval.pk])),
        approver_client.get(reverse("observer:detail", args=[approval.pk]), **HTMX),
    ]

    for page in pages:
        body = page.content.decode()
        assert SCRIPT not in body
        assert "&lt;script&gt;" in body


def test_diff_rendered(approver_client, make_approval):
    approval = make_approval(payload={"diff": "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new"})

    body = approver_client.get(reverse("observer:detail", args=[approval.pk])).content.decode()

    assert '<span class="diff-add">+new</span>' in body
    assert '<span class="diff-del">-old</span>' in body
    assert '<span class="diff-hunk">@@ -1 +1 @@</span>' in body
