"""The wheel is the product: it carries the templates, migrations, static files, email defaults and
translations inside the package, and an installed copy finds them (and its instance folder) from
any working directory, without the repository beside it."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from membership import ROOT

pytestmark = pytest.mark.skipif(not (ROOT / "pyproject.toml").is_file(), reason="needs the source tree")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                   check=True, cwd=out, capture_output=True, text=True)
    wheels = list(out.glob("samiti-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _repo_files(folder: str, pattern: str = "*") -> set[str]:
    base = ROOT / folder
    return {p.relative_to(base).as_posix() for p in base.rglob(pattern)
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def test_wheel_contains_templates_migrations_static_and_defaults(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    inside = lambda prefix: {n[len(prefix):] for n in names if n.startswith(prefix)}  # noqa: E731
    # every file of the top-level folders, bundled under the package
    assert _repo_files("templates") and inside("membership/templates/") == _repo_files("templates")
    assert inside("membership/migrations/") == _repo_files("migrations")
    assert "membership/migrations/alembic.ini" in names and "membership/migrations/env.py" in names
    assert any(n.startswith("membership/migrations/versions/") and n.endswith(".py") for n in names)
    for folder in ("membership/static", "membership/data", "membership/notifications/defaults"):
        assert inside(folder + "/") == _repo_files(folder), folder
    assert "membership/static/vendor/bootstrap/bootstrap.min.css" in names
    assert "membership/wsgi.py" in names
    catalogues = _repo_files("membership/translations", "*.mo") | _repo_files("membership/translations", "*.po")
    assert {f for f in inside("membership/translations/") if f.endswith((".mo", ".po"))} == catalogues
    # nothing of the repository's own clutter
    assert not any("__pycache__" in n or n.startswith(("tests/", "templates/", "migrations/")) for n in names)


def test_installed_copy_finds_its_files_from_any_directory(wheel, tmp_path):
    """Unpack the wheel (what pip install does) and build the app from another directory, with no
    checkout on the path: templates and migrations come from the package, the instance folder is
    ./instance of the working directory (or SAMITI_INSTANCE_PATH)."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    probe = ("import json, membership, flask_migrate; from membership import create_app; "
             "app = create_app(); print(json.dumps({'pkg': membership.__file__, 'templates': app.template_folder, "
             "'migrations': app.extensions['migrate'].directory, 'instance': app.instance_path, "
             "'renders': bool(app.jinja_env.get_template('base.html'))}))")
    env = {k: v for k, v in os.environ.items() if k not in ("SAMITI_INSTANCE_PATH", "DATABASE_URL", "FLASK_APP")}
    env["PYTHONPATH"] = str(site)  # ahead of the editable install of the checkout
    env["PYTHONSAFEPATH"] = "1"
    import json

    def run(**extra):
        done = subprocess.run([sys.executable, "-c", probe], cwd=cwd, env={**env, **extra}, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    found = run()
    assert found["pkg"] == str(site / "membership" / "__init__.py")
    assert found["templates"] == str(site / "membership" / "templates")
    assert found["migrations"] == str(site / "membership" / "migrations")
    assert found["instance"] == str(cwd / "instance") and found["renders"]
    assert run(SAMITI_INSTANCE_PATH=str(tmp_path / "data"))["instance"] == str(tmp_path / "data")
