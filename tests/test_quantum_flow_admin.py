"""Admin pages of quantum_flow: run list and filters, steps and attempts, retry and cancel actions."""
import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.urls import reverse

from singularity.quantum_flow import start_flow
from singularity.quantum_flow.models import FlowRun, RunStatus, StepState, StepStatus
from tests.quantum_flow_flows import DiamondFlow, RefusingFlow

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:quantum_flow_flowrun_changelist"


@pytest.fixture
def admin_client_logged_in(client, django_user_model):
    user = django_user_model.objects.create_superuser("flow-admin", password="flow-admin-pass-1")
    client.force_login(user)
    return client


@pytest.fixture
def failed_run(flow_queues):
    return start_flow(RefusingFlow, {}, eager=True)


@pytest.fixture
def running_run(flow_queues):
    return start_flow(DiamondFlow, {"n": 5})


def post_action(client, action: str, runs, **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(run.pk) for run in runs], **extra}
    return client.post(reverse(CHANGELIST), data, follow=True)


def test_changelist_filters_by_flow_and_status(admin_client_logged_in, failed_run, running_run):
    response = admin_client_logged_in.get(reverse(CHANGELIST), {"flow": "test_refusing", "status": "failed"})

    assert response.status_code == 200
    assert str(failed_run.pk) in response.content.decode()
    assert str(running_run.pk) not in response.content.decode()


def test_run_page_shows_steps_and_outputs(admin_client_logged_in, flow_queues):
    run = start_flow(DiamondFlow, {"n": 9}, eager=True)

    response = admin_client_logged_in.get(reverse("admin:quantum_flow_flowrun_change", args=[run.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    for name in "abcd":
        assert f">{name}</a>" in page
    assert "&quot;saw&quot;" in page, "step outputs are shown"


def test_step_page_shows_attempt_error(admin_client_logged_in, failed_run):
    step = StepState.objects.get(run_id=failed_run.pk, name="refuse")

    response = admin_client_logged_in.get(reverse("admin:quantum_flow_stepstate_change", args=[step.pk]))

    assert response.status_code == 200
    assert "input can never work" in response.content.decode()


def test_retry_asks_for_confirmation(admin_client_logged_in, failed_run):
    response = post_action(admin_client_logged_in, "retry_selected", [failed_run])

    assert "Retry failed runs?" in response.content.decode()
    assert FlowRun.objects.get(pk=failed_run.pk).status == RunStatus.FAILED


def test_retry_confirmed_requeues_failed_step(admin_client_logged_in, failed_run):
    response = post_action(admin_client_logged_in, "retry_selected", [failed_run], confirm="yes")

    assert "Retried 1 run(s) from their failed step." in response.content.decode()
    assert FlowRun.objects.get(pk=failed_run.pk).status == RunStatus.RUNNING
    assert StepState.objects.get(run_id=failed_run.pk, name="refuse").status == StepStatus.QUEUED


def test_cancel_confirmed_cancels_run(admin_client_logged_in, running_run):
    response = post_action(admin_client_logged_in, "cancel_selected", [running_run], confirm="yes")

    assert "Cancelled 1 run(s)." in response.content.decode()
    cancelled = FlowRun.objects.get(pk=running_run.pk)
    assert cancelled.status == RunStatus.CANCELLED
    assert cancelled.error == "cancelled by flow-admin in the admin"


def test_action_on_ineligible_runs_changes_nothing(admin_client_logged_in, running_run):
    response = post_action(admin_client_logged_in, "retry_selected", [running_run], confirm="yes")

    assert "None of the selected runs is failed; nothing changed." in response.content.decode()
    assert FlowRun.objects.get(pk=running_run.pk).status == RunStatus.RUNNING


def test_view_only_user_has_no_actions(client, django_user_model, failed_run):
    user = django_user_model.objects.create_user("viewer", password="viewer-pass-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_flowrun"))
    client.force_login(user)

    response = client.get(reverse(CHANGELIST))

    assert response.status_code == 200
    assert "retry_selected" not in response.content.decode()
    assert "cancel_selected" not in response.content.decode()


def test_run_page_is_read_only(admin_client_logged_in, failed_run):
    response = admin_client_logged_in.get(reverse("admin:quantum_flow_flowrun_change", args=[failed_run.pk]))

    assert response.status_code == 200
    assert 'name="_save"' not in response.content.decode()
