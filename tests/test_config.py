"""Configuration: embedded defaults, the environment, the instance secret and start-up checks."""
from __future__ import annotations

import re
import stat
import threading
from pathlib import Path

import pytest

from membership import ROOT, create_app
from membership.config import ConfigError, _instance_secret, _normalise_db_url

ENV = ("DATABASE_URL", "SECRET_KEY", "TIMEZONE", "CURRENCY", "ASSOCIATION_NAME", "SESSION_COOKIE_SECURE",
       "SAMITI_INSTANCE_PATH", "MAIL_URL")


@pytest.fixture
def clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def make(tmp_path: Path, **config):
    return create_app({"INSTANCE_PATH": str(tmp_path / "instance"), **config})


def test_embedded_defaults(clean_env, tmp_path):
    app = make(tmp_path)
    instance = tmp_path / "instance"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance / 'samiti.db'}"
    assert app.config["TIMEZONE"] == "Asia/Dhaka" and app.config["CURRENCY"] == "BDT"
    assert app.config["SESSION_COOKIE_HTTPONLY"] and app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["REMEMBER_COOKIE_HTTPONLY"] and app.config["REMEMBER_COOKIE_SAMESITE"] == "Lax"
    assert app.config["RATELIMIT_ENABLED"] is True


def test_secret_key_is_generated_once_into_the_instance_folder_and_reused(clean_env, tmp_path):
    first = make(tmp_path)
    key_file = tmp_path / "instance" / "secret_key"
    key = key_file.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert first.config["SECRET_KEY"] == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # readable by Samiti's user only

    second = make(tmp_path)  # a restart, or a second worker
    assert second.config["SECRET_KEY"] == key
    # A session signed by one process is accepted by the next: logins survive a restart.
    with first.test_request_context():
        cookie = first.session_interface.get_signing_serializer(first).dumps({"user": "x"})
    with second.test_request_context():
        assert second.session_interface.get_signing_serializer(second).loads(cookie) == {"user": "x"}

    elsewhere = create_app({"INSTANCE_PATH": str(tmp_path / "other")})
    assert elsewhere.config["SECRET_KEY"] != key  # each installation has its own


def test_secret_key_from_the_environment_wins(clean_env, tmp_path):
    clean_env.setenv("SECRET_KEY", "from-the-environment-0123456789")
    app = make(tmp_path)
    assert app.config["SECRET_KEY"] == "from-the-environment-0123456789"
    assert not (tmp_path / "instance" / "secret_key").exists()


def test_processes_starting_together_agree_on_one_key(tmp_path):
    path = tmp_path / "secret_key"
    keys: list[str] = []
    go = threading.Barrier(8, timeout=10)

    def start():
        go.wait()
        keys.append(_instance_secret(path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(keys) == 8 and len(set(keys)) == 1


def test_an_empty_secret_file_is_an_error_that_says_what_to_do(tmp_path, monkeypatch):
    from membership import config
    monkeypatch.setattr(config.time, "sleep", lambda s: None)
    path = tmp_path / "secret_key"
    path.write_text("")
    with pytest.raises(RuntimeError, match="delete it"):
        _instance_secret(path)


def test_no_secret_is_hard_coded_in_the_code():
    assignment = re.compile(r"""SECRET_KEY["']?\s*[:=]\s*["'][^"']+["']""")
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "membership").rglob("*.py")
                 if assignment.search(p.read_text("utf-8"))]
    offenders += [name for name in ("wsgi.py",) if (ROOT / name).exists()
                  and assignment.search((ROOT / name).read_text("utf-8"))]
    assert offenders == []


@pytest.mark.parametrize("given, expected", [
    ("postgres://u:p@db.example.org:5432/samiti", "postgresql+psycopg://u:p@db.example.org:5432/samiti"),
    ("postgresql://u@localhost/samiti", "postgresql+psycopg://u@localhost/samiti"),
    ("postgresql+psycopg://u@localhost/samiti", "postgresql+psycopg://u@localhost/samiti"),
    ("sqlite:////var/lib/samiti/samiti.db", "sqlite:////var/lib/samiti/samiti.db"),
])
def test_database_url_is_normalised(given, expected):
    assert _normalise_db_url(given) == expected


def test_database_url_from_the_environment(clean_env, tmp_path):
    clean_env.setenv("DATABASE_URL", "postgres://samiti:secret@db.internal/samiti")
    app = make(tmp_path)
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://samiti:secret@db.internal/samiti"


def test_settings_come_from_the_environment(clean_env, tmp_path):
    clean_env.setenv("TIMEZONE", "Europe/London")
    clean_env.setenv("CURRENCY", "gbp")
    clean_env.setenv("ASSOCIATION_NAME", "Bristol Cycling Club")
    clean_env.setenv("SESSION_COOKIE_SECURE", "true")
    app = make(tmp_path)
    assert (app.config["TIMEZONE"], app.config["CURRENCY"], app.config["ASSOCIATION_NAME"]) == (
        "Europe/London", "GBP", "Bristol Cycling Club")
    assert app.config["SESSION_COOKIE_SECURE"] is True and app.config["REMEMBER_COOKIE_SECURE"] is True


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "../../etc/passwd", "Asia/Dhaka "])
def test_a_bad_timezone_fails_at_start_up_with_a_clear_error(clean_env, tmp_path, zone):
    clean_env.setenv("TIMEZONE", zone or "x")
    with pytest.raises(ConfigError, match=r"TIMEZONE=.* is not a time zone .* such as Asia/Dhaka"):
        make(tmp_path, **({"TIMEZONE": zone} if zone else {}))


def test_a_bad_currency_fails_at_start_up(clean_env, tmp_path):
    with pytest.raises(ConfigError, match="CURRENCY='TAKA' is not an ISO 4217"):
        make(tmp_path, CURRENCY="taka")


def test_the_instance_folder_can_come_from_the_environment(clean_env, tmp_path):
    clean_env.setenv("SAMITI_INSTANCE_PATH", str(tmp_path / "elsewhere"))
    app = create_app()
    assert app.instance_path == str(tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / "secret_key").exists()
