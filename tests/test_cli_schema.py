"""Commands on a database that was never migrated say what to do instead of printing a traceback."""
from __future__ import annotations

import pytest

from membership import create_app


@pytest.mark.parametrize("args", [
    ["scheduler", "jobs"],
    ["scheduler", "run-job", "deliver-email"],
    ["members", "export", "-"],
    ["demo", "--members", "20"],
    ["create-admin", "--email", "a@example.org", "--password", "a long passphrase 1"],
])
def test_a_command_on_an_empty_database_asks_for_db_upgrade(tmp_path, args):
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.db'}", "SECRET_KEY": "t",
                      "INSTANCE_PATH": str(tmp_path / "instance")})
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 1, result.output
    assert "run `flask --app wsgi db upgrade` first" in result.output
    assert "Traceback" not in result.output
