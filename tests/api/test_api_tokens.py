"""API tokens: the admin page (create shows the secret once, revoke), the CLI, hashing, and the
per-token rate limit."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from membership.api.models import ApiToken
from membership.api.tokens import hash_secret
from membership.core.models import AuditLog
from membership.extensions import db
from tests.api.conftest import bearer
from tests.conftest import login


def test_admin_creates_a_token_sees_it_once_and_revokes_it(admin_client, admin_user, client):
    page = admin_client.get("/staff/admin/api-tokens")
    assert page.status_code == 200 and "No API tokens yet." in page.get_data(as_text=True)
    r = admin_client.post("/staff/admin/api-tokens", data={"name": "Website", "scopes": ["read", "write"]})
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    secret = re.search(r'id="api-token-secret">(smt_[A-Za-z0-9_-]+)<', html).group(1)
    token = db.session.scalar(select(ApiToken))
    assert token.scopes == "read write" and token.owner_id == admin_user.id
    assert token.token_hash == hash_secret(secret) and secret not in token.token_hash  # only the hash is kept
    listing = admin_client.get("/staff/admin/api-tokens").get_data(as_text=True)
    assert token.prefix in listing and secret not in listing
    assert client.get("/api/v1/members", headers=bearer(secret)).status_code == 200

    assert admin_client.post(f"/staff/admin/api-tokens/{token.id}/revoke").status_code == 302
    db.session.expire_all()
    assert db.session.get(ApiToken, token.id).revoked_at is not None
    assert client.get("/api/v1/members", headers=bearer(secret)).status_code == 401
    actions = set(db.session.scalars(select(AuditLog.action)))
    assert {"api_token.create", "api_token.revoke"} <= actions
    assert admin_client.post("/staff/admin/api-tokens/999999/revoke").status_code == 404


def test_token_form_refuses_bad_input(admin_client):
    assert admin_client.post("/staff/admin/api-tokens", data={"name": "", "scopes": ["read"]}).status_code == 422
    assert admin_client.post("/staff/admin/api-tokens", data={"name": "x", "scopes": []}).status_code == 422
    assert admin_client.post("/staff/admin/api-tokens", data={"name": "x", "scopes": ["admin"]}).status_code == 422
    assert admin_client.post("/staff/admin/api-tokens", data={"name": "x", "scopes": ["read"],
                                                             "expires_on": "2000-01-01"}).status_code == 422
    assert db.session.scalar(select(ApiToken)) is None


def test_only_admins_manage_tokens(client, staff_user):
    assert client.get("/staff/admin/api-tokens").status_code == 302  # to the sign-in page
    login(client, staff_user)
    assert client.get("/staff/admin/api-tokens").status_code == 403
    assert client.post("/staff/admin/api-tokens", data={"name": "x", "scopes": ["write"]}).status_code == 403
    assert db.session.scalar(select(ApiToken)) is None


def test_cli_create_list_revoke(runner, admin_user, client):
    r = runner.invoke(args=["api", "token", "create", "--name", "accounting", "--owner", admin_user.email,
                            "--scope", "read"])
    assert r.exit_code == 0, r.output
    secret = r.output.strip().splitlines()[-1]
    assert secret.startswith("smt_")
    assert client.get("/api/v1/payments", headers=bearer(secret)).status_code == 200
    assert client.post("/api/v1/members", headers=bearer(secret), json={"first_name": "A"}).status_code == 403
    listing = runner.invoke(args=["api", "token", "list"])
    token = db.session.scalar(select(ApiToken))
    assert token.prefix in listing.output and secret not in listing.output and "accounting" in listing.output
    r = runner.invoke(args=["api", "token", "revoke", token.prefix])
    assert r.exit_code == 0, r.output
    assert client.get("/api/v1/payments", headers=bearer(secret)).status_code == 401
    again = runner.invoke(args=["api", "token", "revoke", str(token.id)])
    assert again.exit_code != 0 and "already revoked" in again.output
    assert runner.invoke(args=["api", "token", "list"]).output.strip() == "No API tokens."
    assert token.prefix in runner.invoke(args=["api", "token", "list", "--all"]).output
    bad = runner.invoke(args=["api", "token", "create", "--name", "x", "--owner", "nobody@example.org"])
    assert bad.exit_code != 0 and "No login" in bad.output


def test_cli_refuses_a_member_login_as_owner(runner, make_user):
    member_login = make_user("member")
    r = runner.invoke(args=["api", "token", "create", "--name", "x", "--owner", member_login.email])
    assert r.exit_code != 0 and "active staff account" in r.output
    assert db.session.scalar(select(ApiToken)) is None


class TestRateLimit:
    @pytest.fixture
    def app_config(self):
        return {"RATELIMIT_ENABLED": True, "API_RATE_LIMIT": "3 per minute"}

    def test_each_token_has_its_own_limit(self, client, make_token):
        from membership.extensions import limiter
        limiter.reset()
        _, one = make_token()
        _, two = make_token()
        for _ in range(3):
            assert client.get("/api/v1/events", headers=bearer(one)).status_code == 200
        r = client.get("/api/v1/events", headers=bearer(one))
        assert r.status_code == 429
        body = r.get_json()
        assert body["error"]["code"] == "rate_limited" and "3 per 1 minute" in body["error"]["message"]
        assert client.get("/api/v1/events", headers=bearer(two)).status_code == 200  # another token is not slowed
