"""App configuration for the chat streaming app."""

from django.apps import AppConfig


class StreamingConfig(AppConfig):
    """Conversations, messages and the live answer stream."""

    name = "streaming"
    verbose_name = "Chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from streaming import sessions, sso
        from streaming.services import attachments

        # A logout, a new password, a deactivated or deleted user closes the user's sockets.
        sessions.connect_signals()
        # A sign-in through the identity provider keeps the account in step with its claims.
        sso.connect_signals()
        # An attachment's row deleted, however: its bytes go too.
        attachments.connect_signals()
