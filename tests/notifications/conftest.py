"""Shared helpers of the notification tests: queue messages, a scriptable backend, the sent list."""
from __future__ import annotations

import itertools
import threading

import pytest

from membership.extensions import db
from membership.notifications import outbox
from membership.notifications.backends import Backend, memory_store

KEYS = itertools.count(1)


@pytest.fixture
def sent(app):
    """What the memory:// backend delivered (a list of backends.Outgoing)."""
    store = memory_store(app)
    store.clear()
    return store


@pytest.fixture
def queue(app):
    """queue(n=1, **enqueue kwargs) -> the new rows (committed), to distinct addresses."""
    from tests.conftest import NOW

    def make(n=1, *, member=None, template_key="welcome", now=NOW, **kw):
        rows = []
        for _ in range(n):
            i = next(KEYS)
            kwargs = {"to_address": f"r{i}@example.org", "to_name": f"Reader {i}"} if member is None else {}
            kwargs.update(kw)
            rows.append(outbox.enqueue(db.session, template_key=template_key, dedupe_key=f"test:{i}", now=now,
                                       member=member, **kwargs))
        db.session.commit()
        return rows
    return make


class ScriptedBackend(Backend):
    """A backend whose answer per recipient address comes from `script` (an exception to raise, or
    None to accept); it records what it delivered and how often it was opened."""

    name = "scripted"

    def __init__(self, script=None, default=None):
        self.script = dict(script or {})
        self.default = default
        self.delivered = []
        self.opens = 0
        self.lock = threading.Lock()

    def open(self):
        self.opens += 1
        error = self.script.get("open")
        if error is not None:
            raise error

    def send(self, item):
        error = self.script.get(item.recipients[0], self.default)
        if callable(error) and not isinstance(error, BaseException) and not isinstance(error, type):
            error = error(item)
        if error is not None:
            raise error
        with self.lock:
            self.delivered.append(item)


@pytest.fixture
def scripted():
    return ScriptedBackend
