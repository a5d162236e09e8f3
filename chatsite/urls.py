"""Root URLs: auth, admin, the chat app, and the probes of load balancers and Prometheus."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from streaming import probes, sso, views_signup

urlpatterns = [
    # No trailing slash, as probes are usually written; exempt from HTTPS's redirect.
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("metrics", probes.metrics, name="metrics"),
    path("login/", sso.LoginView.as_view(), name="login"),
    path("signup/", views_signup.sign_up, name="signup"),
    path("signup/confirm/<str:uid>/<str:token>/", views_signup.confirm, name="signup_confirm"),
    path("invite/<str:token>/", views_signup.invite, name="invite"),
    path("logout/", sso.LogoutView.as_view(), name="logout"),
    # Single sign-on; the names are allauth's, which reverses them (streaming/sso.py).
    path("accounts/oidc/<str:provider_id>/login/", sso.start, name="openid_connect_login"),
    path(
        "accounts/oidc/<str:provider_id>/login/callback/",
        sso.callback,
        name="openid_connect_callback",
    ),
    # Changing the password signs out the user's other sessions (and their open sockets).
    # Templates of their own: Django's default names would restyle the admin's pages too.
    path(
        "password/",
        auth_views.PasswordChangeView.as_view(template_name="registration/password_change.html"),
        name="password_change",
    ),
    path(
        "password/done/",
        auth_views.PasswordChangeDoneView.as_view(
            template_name="registration/password_changed.html"
        ),
        name="password_change_done",
    ),
    # The admin's logout is the site's: it ends the provider's session too.
    path("admin/logout/", sso.LogoutView.as_view()),
    path("admin/", admin.site.urls),
    path("", include("streaming.urls")),
]
