"""The Approval admin: filters, search, read-only payload, decision buttons and confirmed bulk actions."""
import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from observer.models import Approval

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:observer_approval_changelist"


@pytest.fixture
def admin_approver(approver):
    client = Client()
    client.force_login(approver)
    return client


@pytest.fixture
def viewer_client(django_user_model):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("vera", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_approval"))
    client = Client()
    client.force_login(viewer)
    return client


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_changelist_filters_and_search(admin_approver, make_approval):
    wanted = make_approval(agent_id="search-me")
    make_approval(agent_id="someone-else")

    by_agent = admin_approver.get(reverse(CHANGELIST), {"q": "search-me"})
    by_request = admin_approver.get(reverse(CHANGELIST), {"q": str(wanted.request_id)})
    by_status = admin_approver.get(reverse(CHANGELIST), {"status__exact": "approved"})

    assert by_agent.context["cl"].result_count == 1
    assert by_request.context["cl"].result_count == 1
    assert by_status.context["cl"].result_count == 0


def test_change_page_readonly_with_buttons(admin_approver, make_approval):
    approval = make_approval(payload={"diff": "-old\n+new", "note": "<script>x</script>"})

    response = admin_approver.get(reverse("admin:observer_approval_change", args=[approval.pk]))

    body = response.content.decode()
    assert response.status_code == 200
    assert 'name="action" value="approve"' in body
    assert reverse("admin:observer_approval_decide", args=[approval.pk]) in body
    assert "&lt;script&gt;x&lt;/script&gt;" in body
    assert "<script>x</script>" not in body
    assert "+new</span>" in body
    assert 'name="agent_id"' not in body  # read-only: shown as text, never as an input


def test_change_page_without_permission(viewer_client, make_approval):
    approval = make_approval()

    page = viewer_client.get(reverse("admin:observer_approval_change", args=[approval.pk]))
    post = viewer_client.post(reverse("admin:observer_approval_decide", args=[approval.pk]), {"action": "approve"})

    assert page.status_code == 200
    assert 'value="approve"' not in page.content.decode()
    assert post.status_code == 403
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_change_page_decides(admin_approver, approver, make_approval, clean_queues):
    approval = make_approval()

    response = admin_approver.post(
        reverse("admin:observer_approval_decide", args=[approval.pk]), {"action": "approve", "reason": "fine"}
    )

    assert response.status_code == 302
    current = Approval.objects.get(pk=approval.pk)
    assert (current.status, current.decided_by, current.decision_reason) == ("approved", approver, "fine")
    assert any("The decision was sent to the agent" in text for text in messages_of(response))


def test_change_page_already_decided(admin_approver, make_approval, clean_queues):
    approval = make_approval()
    url = reverse("admin:observer_approval_decide", args=[approval.pk])
    admin_approver.post(url, {"action": "reject"})

    response = admin_approver.post(url, {"action": "approve"})

    assert any("already rejected" in text for text in messages_of(response))
    assert Approval.objects.get(pk=approval.pk).status == "rejected"


def test_bulk_approve_asks_first(admin_approver, make_approval, clean_queues):
    first, second = make_approval(), make_approval()
    data = {"action": "approve_selected", "_selected_action": [first.pk, second.pk]}

    response = admin_approver.post(reverse(CHANGELIST), data)

    assert response.status_code == 200
    assert "Are you sure you want to approve" in response.content.decode()
    assert Approval.objects.filter(status="pending").count() == 2


def test_bulk_approve_reports(admin_approver, make_approval, clean_queues):
    pending = make_approval()
    done = make_approval(status="rejected")
    question = make_approval(type="question", payload={"question": "Which?"})
    data = {
        "action": "approve_selected",
        "_selected_action": [pending.pk, done.pk, question.pk],
        "post": "yes",
        "reason": "batch",
    }

    response = admin_approver.post(reverse(CHANGELIST), data)

    texts = messages_of(response)
    assert Approval.objects.get(pk=pending.pk).status == "approved"
    assert Approval.objects.get(pk=pending.pk).decision_reason == "batch"
    assert Approval.objects.get(pk=done.pk).status == "rejected"
    assert Approval.objects.get(pk=question.pk).status == "pending"
    assert any(text.startswith("Approved 1 request(s)") for text in texts)
    assert any(text.startswith("Skipped 2:") for text in texts)


@pytest.mark.parametrize("action, status", [("reject_selected", "rejected"), ("cancel_selected", "cancelled")])
def test_bulk_reject_and_cancel(admin_approver, make_approval, clean_queues, action, status):
    approval = make_approval()

    admin_approver.post(reverse(CHANGELIST), {"action": action, "_selected_action": [approval.pk], "post": "yes"})

    assert Approval.objects.get(pk=approval.pk).status == status


def test_bulk_actions_need_permission(viewer_client, make_approval):
    make_approval()

    response = viewer_client.get(reverse(CHANGELIST))

    assert response.status_code == 200
    assert "approve_selected" not in response.content.decode()


def test_no_add_or_delete(admin_approver, make_approval):
    approval = make_approval()

    assert admin_approver.get(reverse("admin:observer_approval_add")).status_code == 403
    assert admin_approver.get(reverse("admin:observer_approval_delete", args=[approval.pk])).status_code == 403
