"""benchmarks/cdnow_to_history.py: the CDNOW text file becomes history import files, and the import
keeps every purchase (two on one day are two)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from sqlalchemy import func, select

from membership.core.models import Activity
from membership.extensions import db
from membership.members.models import Member

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = """ customer_id  date number_of_cds  dollar_value
 00001 19970101  1   11.77
 00002 19970112  1   12.00
 00002 19970112  5   77.00
 00002 19970112  1   12.00
 00003 19970102  2   20.76
 00003 19970330  2   20.76
"""


def converter():
    spec = importlib.util.spec_from_file_location("cdnow_to_history", ROOT / "benchmarks" / "cdnow_to_history.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cdnow_converts_and_imports_without_losing_a_purchase(app, runner, tmp_path):
    src = tmp_path / "CDNOW_master.txt"
    src.write_text(SAMPLE, encoding="ascii")
    assert converter().convert(src, tmp_path / "history") == (3, 6)
    members = (tmp_path / "history" / "members.csv").read_text().splitlines()
    assert members[0] == "external_id,first_name,last_name,email,joined_on"
    assert "cdnow-00003,Customer,00003,,1997-01-02" in members
    result = runner.invoke(args=["history", "import", str(tmp_path / "history")])
    assert result.exit_code == 0, result.output
    two = db.session.scalars(select(Member).where(Member.external_id == "cdnow-00002")).one()
    rows = db.session.scalars(select(Activity).where(Activity.member_id == two.id)).all()
    assert sorted(a.detail["amount_minor"] for a in rows) == [1200, 1200, 7700]
    assert all(a.kind == "payment" for a in rows)
    assert db.session.scalar(select(func.count()).select_from(Activity)) == 6
