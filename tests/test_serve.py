"""`flask serve`: the one-command start on the embedded default, its demo logins and its scheduler."""
from __future__ import annotations

import http.cookiejar
import os
import queue
import re
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from membership import demo
from membership.accounts.models import User
from membership.accounts.services import authenticate, set_password
from membership.extensions import db
from tests.conftest import NOW, zone_in_working_hours

ROOT = Path(__file__).resolve().parent.parent
LOGIN_LINE = re.compile(r"^\s+(admin|staff|member)\s+(\S+@\S+)\s+(\S+)", re.M)


# ---------------------------------------------------------------- the real command, as a process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """`flask --app wsgi serve` in a subprocess, with its output read line by line."""

    def __init__(self, tmp_path: Path, *args: str, port: int | None = None, env: dict[str, str] | None = None):
        self.port = port or _free_port()
        extra = env or {}
        env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "FLASK_APP")}
        env.update(extra)
        env.update(SAMITI_INSTANCE_PATH=str(tmp_path / "instance"), DATABASE_URL=f"sqlite:///{tmp_path / 'samiti.db'}",
                   PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "serve", "--port", str(self.port), *args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output = ""
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(f"no {text!r} from serve; output so far:\n{self.output}")
            self.output += line
        return self.output

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> int:
        self.proc.terminate()
        try:
            code = self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.wait_for("Samiti stopped.", timeout=5)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=5)
        self.proc.stdout.close()


@pytest.fixture
def serve_process(tmp_path):
    started: list[Serve] = []

    def start(*args: str, port: int | None = None, env: dict[str, str] | None = None) -> Serve:
        server = Serve(tmp_path, *args, port=port, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def sign_in(server: Serve, email: str, password: str) -> str:
    """Sign in through the real login form (with its CSRF token); returns the URL landed on
    ("refused" when the form answers with an error status)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(server.url("/login"), timeout=10).read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or \
        re.search(r'value="([^"]+)"[^>]*name="csrf_token"', page)
    assert token, page
    data = urllib.parse.urlencode({"csrf_token": token.group(1), "email": email, "password": password}).encode()
    try:
        response = opener.open(server.url("/login"), data=data, timeout=10)
    except urllib.error.HTTPError as e:
        assert e.code == 401, e
        return "refused"
    return response.geturl()


def test_serve_starts_with_demo_data_and_prints_working_logins(serve_process, tmp_path):
    server = serve_process("--demo-members", "20")
    output = server.wait_for("Press Ctrl-C to stop.")
    assert f"Samiti is running at http://127.0.0.1:{server.port}/" in output
    assert "Demo data: 20 members" in output
    logins = {role: (email, password) for role, email, password in LOGIN_LINE.findall(output)}
    assert set(logins) == {"admin", "staff", "member"}

    assert sign_in(server, *logins["admin"]).endswith("/staff/")
    assert "/my/" in sign_in(server, *logins["member"])
    assert sign_in(server, logins["staff"][0], "not-the-password") == "refused"
    assert sign_in(server, *logins["staff"]).endswith("/staff/")

    path = tmp_path / "instance" / "demo-logins.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert logins["admin"][1] in path.read_text()
    assert server.stop() == 0

    # A second start: no second demo, the same logins.
    again = serve_process()
    output = again.wait_for("Press Ctrl-C to stop.")
    assert "Creating" not in output
    assert {role: (email, pw) for role, email, pw in LOGIN_LINE.findall(output)} == logins
    assert again.stop() == 0


def test_serve_without_demo_makes_only_a_first_admin(serve_process):
    server = serve_process("--no-demo")
    output = server.wait_for("Press Ctrl-C to stop.")
    assert "Demo data" not in output
    assert [role for role, _, _ in LOGIN_LINE.findall(output)] == ["admin"]
    email, password = LOGIN_LINE.findall(output)[0][1:]
    assert sign_in(server, email, password).endswith("/staff/")
    assert server.stop() == 0


def test_serve_says_so_when_the_port_is_taken(serve_process):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = serve_process("--no-demo", port=taken.getsockname()[1])
        assert server.proc.wait(timeout=60) != 0
        output = server.wait_for(f"Port {server.port} is in use")
        assert "different port" in output and "Samiti is running" not in output


# ---------------------------------------------------------------- the demo logins, in-process


@pytest.fixture
def demo_db(app):
    result = app.test_cli_runner().invoke(args=["demo", "--members", "20", "--today", "2026-06-15"])
    assert result.exit_code == 0, result.output
    return app


def test_demo_logins_are_made_once_and_kept(demo_db, tmp_path):
    path = tmp_path / "logins.txt"
    first = demo.ensure_demo_logins(db.session, path, now=NOW)
    db.session.commit()
    demo.write_logins(path, first, NOW)
    assert [login.role for login in first] == ["admin", "staff", "member"]
    assert all(login.password for login in first)
    member_user = db.session.scalar(select(User).where(User.role == "member"))
    assert member_user.member is not None and member_user.member.status == "active"
    for login in first:
        assert authenticate(db.session, login.email, login.password) is not None

    again = demo.ensure_demo_logins(db.session, path, now=NOW)
    assert [(x.email, x.password) for x in again] == [(x.email, x.password) for x in first]
    assert db.session.scalar(select(func.count()).select_from(User)) == 4  # 3 demo staff + 1 member


def test_a_password_changed_in_samiti_is_not_overwritten(demo_db, tmp_path):
    path = tmp_path / "logins.txt"
    first = demo.ensure_demo_logins(db.session, path, now=NOW)
    demo.write_logins(path, first, NOW)
    admin = db.session.scalar(select(User).where(User.email == "admin@example.com"))
    set_password(db.session, admin, "my own long passphrase 7", actor=admin, now=NOW)
    db.session.commit()

    again = demo.ensure_demo_logins(db.session, path, now=NOW)
    assert again[0].password is None and "not shown" in again[0].note
    assert authenticate(db.session, "admin@example.com", "my own long passphrase 7") is not None

    reset = demo.ensure_demo_logins(db.session, path, now=NOW, reset=True)
    assert reset[0].password and authenticate(db.session, "admin@example.com", reset[0].password)


def test_no_demo_logins_on_a_database_without_demo_data(app, make_member):
    make_member()
    db.session.commit()
    assert not demo.has_demo_data(db.session)
    assert not demo.database_is_empty(db.session)


# ---------------------------------------------------------------- the in-process scheduler


def test_serve_runs_the_real_scheduler_in_process_and_releases_its_leases(serve_process, tmp_path):
    import sqlite3

    # renewal reminders fire daily from 08:00 local: pick a zone where that has passed today, so
    # the start-up catch-up must send them (before 08:00 they wait for 08:00, as they should)
    server = serve_process("--demo-members", "20", env={"TIMEZONE": zone_in_working_hours()})
    output = server.wait_for("Press Ctrl-C to stop.")
    assert "Scheduler running in this process" in output
    for name in ("status-transitions", "renewal-reminders", "deliver-email"):
        assert name in output
    assert f"Emails go to files in {tmp_path / 'instance' / 'mail'}" in output

    def runs() -> dict[str, str]:
        with sqlite3.connect(tmp_path / "samiti.db") as con:
            return dict(con.execute("SELECT job_name, status FROM job_run ORDER BY id").fetchall())

    # statuses ran before the URL was printed; today's reminder sweep catches up seconds later
    assert runs().get("status-transitions") == "ok"
    deadline = time.monotonic() + 30
    while runs().get("renewal-reminders") != "ok" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert runs().get("renewal-reminders") == "ok", runs()
    assert server.stop() == 0
    with sqlite3.connect(tmp_path / "samiti.db") as con:
        held = con.execute("SELECT job_name FROM job_lease WHERE holder IS NOT NULL").fetchall()
    assert held == []
