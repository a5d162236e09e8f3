"""A real OpenID Connect provider for the tests: a small Django project on
django-oauth-toolkit, started in a process of its own on a loopback port (``__main__``),
with its users and their claims read from a JSON file the test writes (``IDP_USERS``)."""
