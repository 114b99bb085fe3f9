"""The approvers' pages under /observer/: a self-refreshing queue, a detail panel and decision forms.

Every page works as plain HTML with form posts. With JavaScript on, htmx polls the list and swaps
partials in place. The same views serve both and choose the partial when ``request.htmx`` is set.
"""
import logging
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from . import decisions
from .forms import DecisionForm
from .models import DECIDE_PERMISSION, Approval, ApprovalStatus

logger = logging.getLogger(__name__)

VIEW_PERMISSION = "observer.view_approval"
ROWS_LIMIT = 200  # Rows on one page; the admin list paginates everything.
ALL_STATUSES = "all"


def can_view(user) -> bool:
    return user.is_authenticated and (user.has_perm(VIEW_PERMISSION) or user.has_perm(DECIDE_PERMISSION))


def approver_required(*, decide: bool = False):
    """Require a signed-in user with the view permission, or the decide permission when ``decide`` is set.

    An anonymous GET goes to the sign-in page. An anonymous POST and a signed-in user without the
    permission get 403, so a decision never comes from someone who may not make it.
    """

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            user = request.user
            if not user.is_authenticated and request.method == "GET":
                return redirect_to_login(request.get_full_path(), reverse("observer:login"))
            allowed = user.has_perm(DECIDE_PERMISSION) if decide else can_view(user)
            if not allowed and not user.is_authenticated:
                raise PermissionDenied("Sign in as an approver first; decisions need a signed-in user.")
            if not allowed:
                raise PermissionDenied("Only approvers may use this page; ask an administrator to add you.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


@require_GET
@approver_required()
def approval_queue(request):
    """Render the full page: status filter, the self-refreshing list and the detail panel."""
    return render(request, "observer/queue.html", _list_context(request))


@require_GET
@approver_required()
def approval_rows(request):
    """Render only the list's rows, for the polling request."""
    return render(request, "observer/_rows.html", _list_context(request))


@require_GET
@approver_required()
def approval_detail(request, pk: int):
    approval = _load(pk)
    context = _detail_context(request, approval)
    template = "observer/_detail.html" if request.htmx else "observer/detail.html"
    return render(request, template, context)


@require_POST
@approver_required(decide=True)
def decide(request, pk: int):
    """Apply one decision and report the outcome as a flash message, whatever it is."""
    approval = get_object_or_404(Approval, pk=pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
        if not request.htmx:
            return HttpResponseBadRequest(f"Invalid decision form ({errors}). Go back and submit it again.")
        messages.error(request, f"The decision was not submitted: {errors}.")
        return _decision_response(request, approval)

    action = form.chosen_action
    try:
        approval = decisions.decide(
            approval.pk,
            action,
            request.user,
            reason=form.cleaned_data["reason"],
            answer=form.cleaned_data["answer"],
        )
    except decisions.AlreadyDecided as exc:
        approval = exc.approval
        messages.warning(request, str(exc))
    except decisions.InvalidDecision as exc:
        messages.error(request, str(exc))
    except decisions.ApprovalNotFound as exc:
        raise Http404(str(exc)) from exc
    else:
        messages.success(request, _success_message(approval))

    if request.htmx:
        return _decision_response(request, approval)
    return redirect(_next_url(request, approval))


def _decision_response(request, approval: Approval):
    """Render what replaces the form's target: the row it came from, or the detail panel."""
    row_target = f"approval-row-{approval.pk}"
    context = _detail_context(request, _load(approval.pk))
    template = "observer/_row_swap.html" if request.htmx.target == row_target else "observer/_detail_swap.html"
    return render(request, template, context)


def _success_message(approval: Approval) -> str:
    subject = f"“{approval.summary or approval.request_id}”"
    if approval.status == ApprovalStatus.ANSWERED:
        return f"Answered {subject}. The answer was sent to the agent."
    # The page offers "Decline" for a question, which is stored as rejected.
    verb = "Declined" if approval.is_question and approval.status == ApprovalStatus.REJECTED else approval.get_status_display()
    return f"{verb} {subject}. The decision was sent to the agent."


def _list_context(request) -> dict:
    status = request.GET.get("status") or ApprovalStatus.PENDING
    if status != ALL_STATUSES and status not in ApprovalStatus.values:
        status = ApprovalStatus.PENDING
    # Expire on read, so a request past its deadline is never offered for a decision.
    decisions.expire_due()
    approvals = Approval.objects.select_related("decided_by")
    if status != ALL_STATUSES:
        approvals = approvals.filter(status=status)
    if status == ApprovalStatus.PENDING:
        approvals = approvals.order_by("created_at")  # The oldest request waits longest: first.
    return {
        "approvals": list(approvals[:ROWS_LIMIT]),
        "status": status,
        "statuses": [(ALL_STATUSES, "All"), *ApprovalStatus.choices],
        "can_decide": request.user.has_perm(DECIDE_PERMISSION),
        "rows_limit": ROWS_LIMIT,
        "refresh_seconds": f"{settings.OBSERVER_REFRESH_SECONDS:g}",
    }


def _detail_context(request, approval: Approval) -> dict:
    return {
        "approval": approval,
        "history": list(approval.history.select_related("actor")),
        "can_decide": request.user.has_perm(DECIDE_PERMISSION),
        "form": DecisionForm(),
        "next": request.POST.get("next") or request.GET.get("next") or "",
    }


def _load(pk: int) -> Approval:
    approval = get_object_or_404(Approval.objects.select_related("decided_by"), pk=pk)
    if approval.is_pending and approval.is_past_expiry():
        approval = decisions.expire(approval.pk) or approval
    return approval


def _next_url(request, approval: Approval) -> str:
    candidate = request.POST.get("next", "")
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse("observer:detail", args=[approval.pk])
