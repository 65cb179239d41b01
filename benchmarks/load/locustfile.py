"""Locust users for benchmarks/load/run.py (which starts Locust headless with this file).

Staff (4 in 5 users) browse pages, search members and write: staff notes, renewals, event
registrations on a member's behalf; members (1 in 5) browse their portal. Every request is named
by its kind, so Locust's table gives p50/p95 per kind: "pages", "searches", "writes" (the POSTs
themselves), plus "login" and "forms" (the GET of a form before its POST, not counted in the mix).
Targets (hosts, logins, ids) come from the JSON file in LOAD_TARGETS."""
from __future__ import annotations

import itertools
import json
import os
import random
import re
from html.parser import HTMLParser

from locust import HttpUser, between, task

TARGETS = json.load(open(os.environ["LOAD_TARGETS"]))
HOSTS = itertools.cycle(TARGETS["hosts"])
STAFF = itertools.cycle(TARGETS["staff"])
MEMBERS = itertools.cycle(TARGETS["members"])
WORDS = TARGETS["search_words"]


class Forms(HTMLParser):
    """The forms of a page: action -> {field: value}, with the values the page pre-filled."""

    def __init__(self):
        super().__init__()
        self.forms: dict[str, dict[str, str]] = {}
        self._form: dict[str, str] | None = None
        self._select: str | None = None
        self._first_option: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = self.forms.setdefault(a.get("action") or "", {})
        elif self._form is None:
            return
        elif tag == "input" and a.get("name") and a.get("type") not in ("submit", "button", "checkbox", "radio"):
            self._form[a["name"]] = a.get("value") or ""
        elif tag == "input" and a.get("name") and a.get("type") in ("checkbox", "radio") and "checked" in a:
            self._form[a["name"]] = a.get("value") or "y"
        elif tag == "select" and a.get("name"):
            self._select, self._first_option = a["name"], None
        elif tag == "option" and self._select:
            value = a.get("value", "")
            if self._first_option is None and value:
                self._first_option = value
            if "selected" in a:
                self._form[self._select] = value
        elif tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self._form[a["name"]] = ""

    def handle_data(self, data):
        if self._textarea and self._form is not None:
            self._form[self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select" and self._select and self._form is not None:
            self._form.setdefault(self._select, self._first_option or "")
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def forms_of(html: str) -> dict[str, dict[str, str]]:
    parser = Forms()
    parser.feed(html)
    return parser.forms


def ok(response) -> None:
    """5xx and unexpected 4xx are failures; 422 (a refused form, e.g. a full event for a member
    already registered) and redirects are answers."""
    if response.status_code >= 500 or response.status_code in (400, 401, 403, 404, 405, 429):
        response.failure(f"HTTP {response.status_code}")
    else:
        response.success()


class SignedIn(HttpUser):
    abstract = True
    wait_time = between(1, 3)
    login: dict

    def on_start(self):
        self.base = next(HOSTS)
        page = self.client.get(self.base + "/login", name="login")
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text) or \
            re.search(r'value="([^"]+)"[^>]*name="csrf_token"', page.text)
        with self.client.post(self.base + "/login", name="login", catch_response=True, allow_redirects=False,
                              data={"csrf_token": token.group(1), "email": self.login["email"],
                                    "password": self.login["password"]}) as response:
            if response.status_code != 302:
                response.failure(f"login refused: HTTP {response.status_code}")

    def get(self, path: str, name: str):
        with self.client.get(self.base + path, name=name, catch_response=True) as response:
            ok(response)
            return response

    def post_form(self, page_path: str, action_suffix: str, changes: dict[str, str]):
        """GET the page, fill the form whose action ends with `action_suffix`, POST it."""
        page = self.get(page_path, "forms")
        if page.status_code != 200:
            return
        # a form without an action posts to its own page
        form = next(((action or page_path, fields) for action, fields in forms_of(page.text).items()
                     if (action or page_path).split("?")[0].endswith(action_suffix)), None)
        if form is None:
            return  # e.g. a renewal not open yet: the page said so; nothing to write
        target, fields = form
        fields.update(changes)
        with self.client.post(self.base + target, data=fields, name="writes", catch_response=True,
                              allow_redirects=False) as response:
            ok(response)


class Staff(SignedIn):
    weight = 4

    def on_start(self):
        self.login = next(STAFF)
        super().on_start()

    @task(60)
    def pages(self):
        choice = random.random()
        if choice < 0.35:
            self.get(f"/staff/members/{random.choice(TARGETS['member_ids'])}", "pages")
        elif choice < 0.55:
            self.get(f"/staff/members?page={random.randint(1, 6)}", "pages")
        elif choice < 0.70:
            self.get(f"/staff/events/{random.choice(TARGETS['event_ids'])}", "pages")
        elif choice < 0.80:
            self.get("/staff/", "pages")
        elif choice < 0.90:
            self.get("/staff/events", "pages")
        else:
            self.get("/staff/outbox", "pages")

    @task(28)
    def searches(self):
        self.get(f"/staff/members?q={random.choice(WORDS)}", "searches")

    @task(6)
    def staff_note(self):
        member = random.choice(TARGETS["member_ids"])
        self.post_form(f"/staff/members/{member}", "/interactions",
                       {"summary": "Load test: called about the renewal.", "channel": "call"})

    @task(3)
    def renewal(self):
        member = random.choice(TARGETS["renewable_ids"])
        self.post_form(f"/staff/members/{member}/renew", "/renew", {})

    @task(3)
    def event_registration(self):
        event = random.choice(TARGETS["contended_event_ids"])
        self.post_form(f"/staff/events/{event}", "/register-member",
                       {"lookup": random.choice(TARGETS["member_lookups"])})


class Member(SignedIn):
    weight = 1

    def on_start(self):
        self.login = next(MEMBERS)
        super().on_start()

    @task
    def portal(self):
        self.get(random.choice(["/my/", "/my/", "/my/payments", "/my/profile", "/events/"]), "pages")
