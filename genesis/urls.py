"""URLs of genesis: included at the site root by ``singularity.urls``."""
from django.contrib import admin
from django.urls import path

from . import views

app_name = "genesis"

urlpatterns = [
    path("metrics", views.metrics_view, name="metrics"),
    # admin_view: staff only, with the admin's login redirect and no caching.
    path("admin/genesis/dashboard/", admin.site.admin_view(views.dashboard_view), name="dashboard"),
    path("admin/genesis/dashboard/health/", admin.site.admin_view(views.dashboard_health_view), name="dashboard_health"),
]
