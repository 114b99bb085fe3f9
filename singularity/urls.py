"""URL configuration for the web process."""
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="observer:queue"), name="home"),
    # Before the admin, whose catch-all would otherwise take /admin/genesis/dashboard/.
    path("", include("genesis.urls")),
    path("admin/", admin.site.urls),
    path("observer/", include("observer.urls")),
]
