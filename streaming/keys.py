"""Providers' API keys, encrypted at rest: a dump of the database alone does not reveal them.

Fernet (AES-128-CBC with an HMAC-SHA256 over it, from `cryptography`) with a key derived by
HKDF-SHA256 from PROVIDER_KEY_SECRET, which is SECRET_KEY unless set apart. Reading the keys
back takes the database and that secret; a token sealed under another secret is refused
(the HMAC does not match), never decrypted into garbage.
"""

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from streaming.exceptions import KeyUnreadable

# HKDF's "info": keys derived from the same secret for another purpose never equal this one.
_PURPOSE = b"chatsite provider API keys v1"


@functools.lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt(plain: str) -> str:
    """``plain`` sealed under the current PROVIDER_KEY_SECRET, as text for the database."""
    return _fernet(settings.PROVIDER_KEY_SECRET).encrypt(plain.encode()).decode("ascii")


def _readers() -> MultiFernet:
    # While PROVIDER_KEY_SECRET follows SECRET_KEY, Django's way of rotating that (the old
    # one moved to SECRET_KEY_FALLBACKS) keeps the stored keys readable, as it keeps sessions.
    secrets = [settings.PROVIDER_KEY_SECRET]
    if settings.PROVIDER_KEY_SECRET == settings.SECRET_KEY:
        secrets += [str(secret) for secret in settings.SECRET_KEY_FALLBACKS]
    return MultiFernet([_fernet(secret) for secret in secrets])


def decrypt(token: str, *, provider: str) -> str:
    """The key ``token`` seals; KeyUnreadable, naming ``provider``, if it cannot be read."""
    try:
        return _readers().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError, UnicodeDecodeError):
        raise KeyUnreadable(
            f"The API key of the provider “{provider}” cannot be read: the site's "
            "PROVIDER_KEY_SECRET (or SECRET_KEY) changed since it was saved. A staff member "
            "must enter the key again in the admin."
        ) from None
