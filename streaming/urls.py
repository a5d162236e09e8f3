"""Chat pages."""

from django.urls import path

from streaming import views

app_name = "streaming"

urlpatterns = [
    path("", views.conversation_list, name="conversation_list"),
    path("c/page/", views.conversation_page, name="conversation_page"),
    path("c/new/", views.conversation_new, name="conversation_new"),
    path("c/<uuid:conversation_id>/", views.conversation_detail, name="conversation_detail"),
    path("c/<uuid:conversation_id>/delete/", views.conversation_delete, name="conversation_delete"),
    path(
        "c/<uuid:conversation_id>/restore/",
        views.conversation_restore,
        name="conversation_restore",
    ),
]
