"""Web views of genesis: ``/metrics`` for Prometheus, and the admin dashboard with its htmx partial."""
import hmac

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from .dashboard import dashboard_context
from .metrics import render_metrics


def _has_metrics_token(request: HttpRequest) -> bool:
    token = settings.GENESIS_METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest: the time taken does not reveal how much of a guessed token matched.
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Serve the Prometheus figures to a scraper with the bearer token, or to a signed-in staff user."""
    user = request.user
    if not (_has_metrics_token(request) or (user.is_authenticated and user.is_active and user.is_staff)):
        response = HttpResponse(
            "Authentication required: send 'Authorization: Bearer <GENESIS_METRICS_TOKEN>', "
            "or sign in to the admin as a staff user.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)


def dashboard_view(request: HttpRequest) -> TemplateResponse:
    """Show queue health, incidents, rule statistics and the last hour's trend; staff only."""
    context = {**admin.site.each_context(request), "title": "Genesis dashboard", **dashboard_context()}
    return TemplateResponse(request, "genesis/dashboard.html", context)


def dashboard_health_view(request: HttpRequest) -> TemplateResponse:
    """Render only the part of the dashboard that htmx refreshes."""
    return TemplateResponse(request, "genesis/_dashboard_health.html", dashboard_context())
