"""URLs of the approvers' pages, mounted at /observer/."""
from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from . import views

app_name = "observer"

urlpatterns = [
    path("", views.approval_queue, name="queue"),
    path("rows/", views.approval_rows, name="rows"),
    path("<int:pk>/", views.approval_detail, name="detail"),
    path("<int:pk>/decide/", views.decide, name="decide"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="observer/login.html", next_page=reverse_lazy("observer:queue")),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page=reverse_lazy("observer:login")), name="logout"),
]
