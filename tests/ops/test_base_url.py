"""Links in emails follow the port `serve` listens on unless BASE_URL is set; a BASE_URL that
points elsewhere is warned about at start."""
from __future__ import annotations

import pytest

from membership import create_app
from membership.ops.urls import base_url_mismatch, serving_url, warn_text
from tests.test_serve import serve_process  # noqa: F401  (the fixture: the real command, as a process)


def test_serve_without_base_url_links_to_its_own_port(serve_process):  # noqa: F811
    server = serve_process("--no-demo", env={"BASE_URL": ""})
    output = server.wait_for("Press Ctrl-C to stop.")
    assert f"their links lead to http://127.0.0.1:{server.port}/." in output
    assert "Warning: BASE_URL" not in output
    server.stop()


def test_serve_warns_when_base_url_points_elsewhere(serve_process):  # noqa: F811
    server = serve_process("--no-demo", env={"BASE_URL": "http://127.0.0.1:5000"})
    output = server.wait_for("Press Ctrl-C to stop.")
    assert (f"Warning: BASE_URL is http://127.0.0.1:5000 but this server listens on http://127.0.0.1:{server.port}"
            in output)
    assert "their links lead to http://127.0.0.1:5000/." in output
    server.stop()


@pytest.mark.parametrize("base, host, port, ok", [
    ("http://127.0.0.1:5631", "127.0.0.1", 5631, True),
    ("http://localhost:5631/", "127.0.0.1", 5631, True),
    ("http://127.0.0.1:5631", "0.0.0.0", 5631, True),
    ("http://members.example.org", "0.0.0.0", 80, True),
    ("http://127.0.0.1:5000", "127.0.0.1", 5631, False),
    ("https://members.example.org", "127.0.0.1", 8000, False),
    ("members.example.org", "127.0.0.1", 8000, False),
])
def test_base_url_against_the_serving_address(base, host, port, ok):
    assert (base_url_mismatch(base, host, port) is None) == ok
    assert warn_text(base, host, port, proxied=True) is None  # behind a declared proxy: no warning


def test_serving_url_and_base_url_sources(tmp_path, monkeypatch):
    assert serving_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert serving_url("::1", 8000) == "http://[::1]:8000"
    common = {"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x", "INSTANCE_PATH": str(tmp_path)}
    for name in ("BASE_URL", "SAMITI_SERVER_URL"):
        monkeypatch.delenv(name, raising=False)
    app = create_app(common)
    assert (app.config["BASE_URL"], app.config["BASE_URL_SOURCE"]) == ("http://127.0.0.1:5000", "default")
    monkeypatch.setenv("SAMITI_SERVER_URL", "http://127.0.0.1:8123")
    app = create_app(common)
    assert (app.config["BASE_URL"], app.config["BASE_URL_SOURCE"]) == ("http://127.0.0.1:8123", "server")
    monkeypatch.setenv("BASE_URL", "https://members.example.org/")
    app = create_app(common)
    assert (app.config["BASE_URL"], app.config["BASE_URL_SOURCE"]) == ("https://members.example.org", "BASE_URL")
