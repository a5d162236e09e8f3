"""Start the test provider: ``python -m tests.support.oidc_provider PORT`` with IDP_WORKDIR
(a folder of the test's), IDP_USERS (the users file), IDP_CLIENT_ID and IDP_CLIENT_SECRET
set. It makes its database, key, users and chatsite's client, then serves until killed."""

import os
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _write_key(workdir: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with open(os.path.join(workdir, "key.pem"), "wb") as out:
        out.write(pem)


def main() -> None:
    port = int(sys.argv[1])
    _write_key(os.environ["IDP_WORKDIR"])
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.support.oidc_provider.settings"
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application
    from oauth2_provider.models import Application

    from tests.support.oidc_provider.claims import users

    call_command("migrate", verbosity=0)
    for name, person in users().items():
        User.objects.create_user(name, password=person["password"])
    Application.objects.create(
        name="chatsite",
        client_id=os.environ["IDP_CLIENT_ID"],
        client_secret=os.environ["IDP_CLIENT_SECRET"],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        # Any port of the loopback address (RFC 8252), so the test starts chatsite after.
        redirect_uris="http://127.0.0.1/accounts/oidc/sso/login/callback/",
        post_logout_redirect_uris="http://127.0.0.1/login/",
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )
    server = make_server(
        "127.0.0.1", port, get_wsgi_application(), server_class=_Server, handler_class=_QuietHandler
    )
    print(f"listening on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
