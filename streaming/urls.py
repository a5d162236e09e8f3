"""Chat pages."""

from django.urls import path

from streaming import views, views_account, views_attachments, views_shared

app_name = "streaming"

urlpatterns = [
    path("", views.conversation_list, name="conversation_list"),
    path("c/page/", views.conversation_page, name="conversation_page"),
    path("c/new/", views.conversation_new, name="conversation_new"),
    path("c/<uuid:conversation_id>/", views.conversation_detail, name="conversation_detail"),
    path("c/<uuid:conversation_id>/delete/", views.conversation_delete, name="conversation_delete"),
    path(
        "c/<uuid:conversation_id>/export.md",
        views_account.export_markdown,
        name="conversation_export_markdown",
    ),
    path(
        "c/<uuid:conversation_id>/export.json",
        views_account.export_json,
        name="conversation_export_json",
    ),
    path(
        "c/<uuid:conversation_id>/share/",
        views_shared.share_conversation,
        name="conversation_share",
    ),
    path("shared/<int:link_id>/revoke/", views_shared.revoke, name="shared_revoke"),
    path("s/<str:token>/", views_shared.shared, name="shared"),
    path("s/<str:token>/continue/", views_shared.continue_shared, name="shared_continue"),
    path("attachments/", views_attachments.upload, name="attachment_upload"),
    path(
        "attachments/<uuid:attachment_id>/",
        views_attachments.attachment_file,
        name="attachment",
    ),
    path("settings/", views_account.settings_page, name="settings"),
    path("usage/", views_account.usage_page, name="usage"),
    path("export/", views_account.export_all, name="export_all"),
    path("import/", views_account.import_conversations, name="import"),
    path(
        "c/<uuid:conversation_id>/restore/",
        views.conversation_restore,
        name="conversation_restore",
    ),
]
