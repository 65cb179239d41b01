"""The app fixture keeps one application context open for the whole test, and Flask reuses it
for every request, so `g` is shared by all requests of a test. Flask-Login caches the signed-in
user there (one client's user would serve another client's requests) and Flask-WTF caches the
CSRF token and its "already checked" flag (a token from before a login's session.clear() would
be rendered again). Forget them when each request ends, as a real server does."""
import pytest
from flask import g

PER_REQUEST = ("_login_user", "csrf_token", "csrf_valid")


def forget_per_request_state(exc=None):
    for name in PER_REQUEST:
        g.pop(name, None)


@pytest.fixture(autouse=True)
def _fresh_request_state(app):
    app.teardown_request(forget_per_request_state)
