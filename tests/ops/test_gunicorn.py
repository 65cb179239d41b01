"""gunicorn.conf.py, for real: two workers behind gunicorn serve /login and /healthz, the access
log carries the request id, links follow the bound port unless BASE_URL is set (with a warning
when it disagrees), and the scheduler refuses to start inside a worker."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from membership import ROOT

pytest.importorskip("gunicorn")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, headers: dict | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


@pytest.fixture
def gunicorn(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'g.db'}"
    base_env = {k: v for k, v in os.environ.items() if k not in ("BASE_URL", "SAMITI_SERVER_URL", "FLASK_APP")}
    base_env.update(DATABASE_URL=db_url, SAMITI_INSTANCE_PATH=str(tmp_path / "instance"), SECRET_KEY="t",
                    MAIL_URL="memory://", HEALTH_SCHEDULER_MAX_AGE="0", WEB_CONCURRENCY="2", PYTHONUNBUFFERED="1")
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=base_env,
                   check=True, capture_output=True)
    started = []

    def start(**env):
        port = _free_port()
        log = tmp_path / f"gunicorn-{port}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                                     "tests.ops.probe_app:app"], cwd=ROOT,
                                    env={**base_env, "BIND": f"127.0.0.1:{port}", **env},
                                    stdout=out, stderr=subprocess.STDOUT)
        started.append(proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if _get(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None:
                raise AssertionError(log.read_text())
            time.sleep(0.2)
        return port, proc, log

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_gunicorn_workers_serve_with_request_ids_and_their_own_address(gunicorn):
    port, proc, log = gunicorn()
    status, headers, body = _get(f"http://127.0.0.1:{port}/login", {"X-Request-ID": "ci-login-1"})
    assert status == 200 and "csrf_token" in body and headers["X-Request-ID"] == "ci-login-1"
    status, headers, body = _get(f"http://127.0.0.1:{port}/healthz")
    assert status == 200 and json.loads(body)["database"]["ok"] is True
    from concurrent.futures import ThreadPoolExecutor

    pids = set()
    # requests in parallel, so that both (sync) workers answer; on a busy machine the second worker
    # can still be importing the app for a while, so keep asking (up to a minute) until it answers
    deadline = time.monotonic() + 60
    with ThreadPoolExecutor(8) as pool:
        while time.monotonic() < deadline:
            for probe in pool.map(lambda _: json.loads(_get(f"http://127.0.0.1:{port}/_probe")[2]), range(8)):
                # each worker makes links on the bound port, and will not start a scheduler
                assert probe["base_url"] == f"http://127.0.0.1:{port}" and probe["source"] == "server"
                assert probe["scheduler_refused"] and "flask scheduler run" in probe["scheduler_refused"]
                pids.add(probe["pid"])
            if len(pids) == 2:
                break
            time.sleep(0.2)
    assert len(pids) == 2 and proc.pid not in pids  # two worker processes, not the master
    proc.terminate()
    proc.wait(timeout=20)
    text = log.read_text()
    assert '"GET /login HTTP/1.1" 200' in text and "rid=ci-login-1" in text
    assert "BASE_URL is not set: links in emails from these workers lead to" in text


def test_gunicorn_warns_when_base_url_disagrees_and_keeps_it(gunicorn):
    port, proc, log = gunicorn(BASE_URL="http://127.0.0.1:5000")
    probe = json.loads(_get(f"http://127.0.0.1:{port}/_probe")[2])
    assert probe["base_url"] == "http://127.0.0.1:5000" and probe["source"] == "BASE_URL"
    proc.terminate()
    proc.wait(timeout=20)
    assert (f"BASE_URL is http://127.0.0.1:5000 but this server listens on http://127.0.0.1:{port}"
            in log.read_text())


def test_gunicorn_json_logs(gunicorn):
    port, proc, log = gunicorn(LOG_FORMAT="json")
    _get(f"http://127.0.0.1:{port}/login", {"X-Request-ID": "json-1"})
    proc.terminate()
    proc.wait(timeout=20)
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [e for e in entries if e.get("logger") == "gunicorn.access" and e["request_id"] == "json-1"]
    assert access and access[0]["status"] == 200 and access[0]["path"] == "/login"
    assert any(e["logger"].startswith("gunicorn.error") for e in entries)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert all(line.startswith("{") for line in lines), lines
