"""The security baseline, checked against every registered route (so routes added later are covered):
who may see /staff, CSRF on every form and every POST, no change through GET, security headers,
error pages, and password hashing."""
from __future__ import annotations

import re
from datetime import date
from html.parser import HTMLParser

import pytest
from sqlalchemy import select
from werkzeug.security import check_password_hash

from membership.accounts import services as accounts
from membership.extensions import db
from tests.conftest import NOW, PASSWORD, login

# Read before any fixture patches it (conftest makes tests use a fast hash).
PRODUCTION_PASSWORD_METHOD = accounts.PASSWORD_METHOD
CSRF_MESSAGE = "Your form expired or was sent from another site."


# ---------------------------------------------------------------- a world with one of everything


@pytest.fixture
def world(app, make_member, make_plan, make_user, staff_user, admin_user):
    """Rows for every kind of id a route can take, so each URL can be built with a real id."""
    from membership.members.services import add_contact, add_interaction, save_organization
    from membership.plans.services import PaymentInput, join

    plan = make_plan(code="STD", name="Standard")
    org_plan = make_plan(code="ORG", name="Corporate", is_organizational=True, fee_minor=0)
    member = make_member(first_name="রবীন্দ্রনাথ", last_name="ঠাকুর")
    term = join(db.session, member, plan, today=date(2026, 6, 1), now=NOW, actor=staff_user,
                payment=PaymentInput(amount_minor=5000, method="cash", received_at=NOW))
    org = save_organization(db.session, {"name": "Dhaka Traders"}, actor=staff_user, now=NOW)
    org_term = join(db.session, org, org_plan, today=date(2026, 6, 1), now=NOW, actor=staff_user)
    contact = make_member(first_name="Karim")
    add_contact(db.session, org, contact, primary=True, actor=staff_user, now=NOW, today=date(2026, 6, 1))
    interaction = add_interaction(db.session, member, channel="call", summary="Asked about renewal", outcome=None,
                                  follow_up_on=None, occurred_at=NOW, actor=staff_user, now=NOW)
    ids = {"member_id": member.id, "term_id": term.id, "membership_id": term.id, "plan_id": plan.id,
           "org_id": org.id, "organization_id": org.id, "payment_id": term.payments[0].id,
           "user_id": staff_user.id, "interaction_id": interaction.id, "token": "not-a-token"}
    try:
        from membership.notifications.models import ReminderRule
        rule = ReminderRule(name="30 days before", offset_days=-30, template_key="renewal_reminder",
                            effective_from=date(2026, 1, 1), created_at=NOW)
        db.session.add(rule)
        db.session.flush()
        ids["rule_id"] = rule.id
    except ImportError:  # pragma: no cover - the notifications area is optional
        pass
    ids["_org_term_id"] = org_term.id
    ids["_contact_id"] = contact.id
    db.session.commit()
    member_user = make_user("member", email="just-a-member@example.org", member_id=member.id)
    return {"ids": ids, "member_user": member_user}


def build_url(app, rule, ids) -> str:
    values = {}
    for arg in rule.arguments:
        if arg == "term_id" and "org_id" in rule.arguments:
            values[arg] = ids["_org_term_id"]
        elif arg == "member_id" and "org_id" in rule.arguments:
            values[arg] = ids["_contact_id"]
        else:
            values[arg] = ids.get(arg, 1)
    return app.url_map.bind("localhost").build(rule.endpoint, values)


def routes(app, *, prefix="", method=None):
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        if rule.endpoint == "static" or not rule.rule.startswith(prefix):
            continue
        if method is None or method in rule.methods:
            yield rule


def staff_routes(app):
    found = [(rule, m) for rule in routes(app, prefix="/staff") for m in ("GET", "POST") if m in rule.methods]
    assert len(found) > 10, "the staff routes were not found"
    return found


# ---------------------------------------------------------------- who may see /staff


def test_an_anonymous_visitor_is_sent_to_sign_in_from_every_staff_url(app, client, world):
    wrong = []
    for rule, method in staff_routes(app):
        url = build_url(app, rule, world["ids"])
        response = client.open(url, method=method)
        location = response.headers.get("Location", "")
        if response.status_code != 302 or not location.startswith("/login?next="):
            wrong.append((method, url, response.status_code, location))
    assert wrong == []


def test_a_member_gets_403_on_every_staff_url(app, client, world):
    assert login(client, world["member_user"]).status_code == 302
    wrong = []
    for rule, method in staff_routes(app):
        url = build_url(app, rule, world["ids"])
        response = client.open(url, method=method)
        if response.status_code != 403 or "You do not have access to this page." not in response.get_data(True):
            wrong.append((method, url, response.status_code))
    assert wrong == []


def test_staff_get_403_on_every_admin_url(app, client, world, staff_user):
    login(client, staff_user)
    admin = [(rule, m) for rule, m in staff_routes(app) if rule.endpoint.startswith("admin.")]
    assert admin, "no admin routes found"
    wrong = []
    for rule, method in admin:
        url = build_url(app, rule, world["ids"])
        response = client.open(url, method=method)
        if response.status_code != 403:
            wrong.append((method, url, response.status_code))
    assert wrong == []


def test_the_member_portal_is_not_for_anonymous_visitors(client):
    response = client.get("/my/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


# ---------------------------------------------------------------- no change through GET


def test_every_post_only_url_refuses_get(app, admin_client, world):
    served_by_get = {rule.rule for rule in routes(app, method="GET")}
    post_only = [rule for rule in routes(app, method="POST") if rule.rule not in served_by_get]
    assert any(rule.endpoint == "auth.logout" for rule in post_only)
    wrong = []
    for rule in post_only:
        url = build_url(app, rule, world["ids"])
        response = admin_client.get(url)
        if response.status_code != 405 or "This action is not allowed here." not in response.get_data(True):
            wrong.append((url, response.status_code))
    assert wrong == []


# Reading personal data in bulk is itself audited (who exported what): an append to the audit log is
# the one write a GET may make.
READ_AUDITS = {"member.export", "event.report_export"}


def snapshot() -> dict[str, list[tuple]]:
    """Every row of every table, to prove that a walk of GET requests wrote nothing."""
    db.session.flush()
    out = {}
    for table in db.metadata.sorted_tables:
        query = select(table).order_by(*table.primary_key.columns)
        if table.name == "audit_log":
            query = query.where(table.c.action.not_in(READ_AUDITS))
        out[table.name] = [tuple(r) for r in db.session.execute(query).all()]
    return out


class FormFinder(HTMLParser):
    """Collects every <form method="post"> and whether it carries a csrf_token field."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._open = {"action": attrs.get("action"), "method": (attrs.get("method") or "get").lower(),
                          "csrf": False}
            self.forms.append(self._open)
        elif tag == "input" and self._open is not None and attrs.get("name") == "csrf_token" \
                and attrs.get("value"):
            self._open["csrf"] = True

    def handle_endtag(self, tag):
        if tag == "form":
            self._open = None


class TestWithCsrf:
    """An app as in production: CSRF on."""

    @pytest.fixture
    def app_config(self):
        return {"WTF_CSRF_ENABLED": True}

    @pytest.fixture
    def admin(self, client, admin_user):
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        response = client.post("/login", data={"email": admin_user.email, "password": PASSWORD,
                                               "csrf_token": token})
        assert response.status_code == 302, "sign-in with a CSRF token failed"
        return client

    def test_a_sign_in_without_the_token_is_refused(self, client, admin_user):
        response = client.post("/login", data={"email": admin_user.email, "password": PASSWORD})
        assert response.status_code == 400
        assert CSRF_MESSAGE in response.get_data(as_text=True)
        assert client.get("/staff/").status_code == 302

    def test_every_post_without_the_token_is_refused_and_writes_nothing(self, app, admin, world):
        before = snapshot()
        wrong = []
        for rule in routes(app, method="POST"):
            url = build_url(app, rule, world["ids"])
            response = admin.post(url, data={"reason": "x", "status": "active", "name": "X", "role": "staff"})
            page = response.get_data(as_text=True)
            if rule.endpoint.startswith("api."):
                # the JSON API takes no CSRF token because it takes no cookies: a signed-in browser's
                # POST is refused for want of a bearer token (tests/api)
                if response.status_code != 401 or response.mimetype != "application/json":
                    wrong.append((url, response.status_code))
                continue
            if rule.endpoint in ("payments.stripe_webhook", "payments.sslcommerz_ipn", "payments.returned"):
                # the payment providers' notifications (verified by signature or validation call
                # instead, tests/payments) and the page SSLCommerz posts the payer back to: no
                # token, but an unsigned post is refused and writes nothing (checked below)
                if response.status_code not in (400, 404):
                    wrong.append((url, response.status_code))
                continue
            if response.status_code != 400 or CSRF_MESSAGE not in page or "<html" not in page:
                wrong.append((url, response.status_code))
        assert wrong == []
        after = snapshot()
        assert after == before

    def test_every_page_renders_writes_nothing_and_every_form_carries_the_token(self, app, admin, world):
        before = snapshot()
        failures, forms_seen, pages = [], 0, 0
        for rule in routes(app, method="GET"):
            if rule.endpoint == "auth.index":
                continue
            url = build_url(app, rule, world["ids"])
            try:
                response = admin.get(url)
            except Exception as e:  # noqa: BLE001 - a page that raises (or warns, under -W error)
                failures.append((url, type(e).__name__, str(e)[:200]))
                continue
            # runs streamed responses to the end too; binary answers (the email open pixel) are fine
            body = response.get_data().decode("utf-8", "replace")
            # /healthz says 503 by design here: no scheduler process beats in the tests
            if response.status_code >= 500 and not (rule.endpoint == "ops.healthz" and response.status_code == 503):
                failures.append((url, response.status_code, "server error"))
                continue
            if response.status_code != 200 or not response.mimetype == "text/html":
                continue
            pages += 1
            finder = FormFinder()
            finder.feed(body)
            for form in finder.forms:
                if form["method"] == "post":
                    forms_seen += 1
                    if not form["csrf"]:
                        failures.append((url, form["action"], "post form without csrf_token"))
        changed = [name for name, rows in snapshot().items() if rows != before[name]]
        assert failures == [] and changed == [], {"page failures": failures, "tables changed by GET": changed}
        assert pages >= 10 and forms_seen >= 5, (pages, forms_seen)

    def test_the_member_page_is_reachable(self, admin, world):
        # Guards the walk above: the ids it builds URLs from are real.
        response = admin.get(f"/staff/members/{world['ids']['member_id']}")
        assert response.status_code == 200


# ---------------------------------------------------------------- headers and error pages


def _check_headers(response):
    csp = response.headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert response.headers.get("X-Frame-Options") == "DENY"
    assert response.headers.get("Referrer-Policy") == "same-origin"


def test_security_headers_on_pages_errors_and_files(client, staff_user):
    for url in ("/login", "/no-such-page", "/static/samiti.css"):
        response = client.get(url)
        _check_headers(response)
        response.close()
    login(client, staff_user)
    home = client.get("/staff/")
    _check_headers(home)
    assert home.headers.get("Cache-Control") == "no-store"  # staff pages are not kept in caches
    _check_headers(client.get("/staff/admin/users"))  # a 403


def test_hsts_when_served_over_https(app, client):
    assert "Strict-Transport-Security" not in client.get("/login").headers
    app.config["SESSION_COOKIE_SECURE"] = True
    assert client.get("/login").headers["Strict-Transport-Security"].startswith("max-age=")


def test_session_cookie_flags(client, staff_user):
    response = login(client, staff_user)
    cookie = next(v for k, v in response.headers.items() if k == "Set-Cookie" and v.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.mark.parametrize("signed_in", [False, True])
def test_the_404_page(client, staff_user, signed_in):
    if signed_in:
        login(client, staff_user)
    response = client.get("/staff/members/999999" if signed_in else "/nowhere")
    page = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "This page does not exist." in page and "<html" in page


def test_json_clients_get_json_errors(client):
    response = client.get("/nowhere", headers={"Accept": "application/json"})
    assert response.status_code == 404 and response.get_json() == {"error": "This page does not exist.",
                                                                    "status": 404}


def test_an_unexpected_error_is_a_friendly_500_and_rolls_back(app, client, make_member):
    def boom():
        make_member(first_name="Half", last_name="Written")
        raise RuntimeError("bug")

    app.add_url_rule("/boom", "boom", boom)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = client.get("/boom")
    page = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Nothing was saved" in page and "Traceback" not in page and "RuntimeError" not in page
    _check_headers(response)
    from membership.members.models import Member
    assert db.session.scalar(select(Member).where(Member.first_name == "Half")) is None


# ---------------------------------------------------------------- passwords


def test_production_hashes_passwords_with_scrypt():
    assert PRODUCTION_PASSWORD_METHOD == "scrypt"
    assert accounts.PASSWORD_METHOD == "scrypt"  # no fixture active here: this is the shipped setting
    hashed = accounts.hash_password("river-lantern-orchard-31")
    method, salt, digest = hashed.split("$")
    assert method.startswith("scrypt:") and int(method.split(":")[1]) >= 2 ** 15  # N: slow and memory-hard
    assert len(salt) >= 16 and len(digest) >= 64
    assert check_password_hash(hashed, "river-lantern-orchard-31")
    assert not check_password_hash(hashed, "river-lantern-orchard-32")
    assert accounts.hash_password("river-lantern-orchard-31") != hashed  # salted


def test_passwords_are_never_stored_in_clear(app, make_user):
    user = make_user("staff", email="hash-check@example.org")
    assert PASSWORD not in (user.password_hash or "")
    assert user.password_hash.startswith("pbkdf2:")  # the tests' fast stand-in for scrypt


@pytest.mark.parametrize("password, problem", [
    ("short-9ch", "Use at least 10 characters."),
    ("x" * 257, "Use at most 256 characters."),
    ("password1234", "too common"),
    ("Password2024!", "too common"),       # a common word with digits and a symbol
    ("P@ssw0rd1234", "too common"),        # look-alike letters
    ("Welcome-2026", "too common"),
    ("samiti123456", "too common"),
    ("1234567890", "too common"),
    ("qwertyuiop12", "too common"),
    ("abcdefghijkl", "too common"),        # a run of the alphabet
    ("0987654321", "too common"),          # backwards
    ("abcabcabcabc", "too common"),        # a repetition
    ("aaaaaaaaaaaa", "too common"),
    ("nadia.rahman-2026", "must not contain your email address"),
    ("Nadia Rahman 2026", "must not be your name"),
    ("Rahman2026!", "must not be your name"),
])
def test_weak_passwords_are_refused(password, problem):
    result = accounts.password_problem(password, email="nadia.rahman@example.org", name="Nadia Rahman")
    assert result is not None and problem in result


def test_a_name_inside_a_longer_password_is_fine():
    assert accounts.password_problem("Rahman-likes-green-tea", email="nr@example.org", name="Nadia Rahman") is None


@pytest.mark.parametrize("password", ["correct-horse-battery-42", "river-lantern-orchard-31", "Tr0ub4dor&3xyz",
                                      "পদ্মা-নদীর-মাঝি-১৯৩৬", "ten chars!"])
def test_good_passwords_are_accepted(password):
    assert accounts.password_problem(password, email="nadia.rahman@example.org", name="Nadia Rahman") is None


def test_a_weak_password_is_refused_when_creating_a_user(app):
    from membership.core.errors import ValidationError
    with pytest.raises(ValidationError) as e:
        accounts.create_user(db.session, email="weak@example.org", name="Weak", role="staff",
                             password="password123", actor=None, now=NOW)
    assert e.value.field == "password"
    assert accounts.get_user_by_email(db.session, "weak@example.org") is None
