"""A move between instances: the members file and the plans file together, as one zip or folder.

`members export move.zip` (or the web's "Export members and plans") writes `plans.csv` and
`members.csv` into one zip; `members import move.zip` (or the web upload of it) imports the plans
first, then the members, so the terms get the same dates and statuses as where they came from.
Export, import into an empty database, export again: the same bytes (the zip's entries carry the
export day as their time, and nothing else that changes between instances).
"""
from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from sqlalchemy.orm import Session

from membership.members import csvio
from membership.members.queries import MemberFilter
from membership.plans.csvio import MEMBERS_FILENAME, PLANS_FILENAME, plans_csv

ZIP_MAGIC = b"PK\x03\x04"


def _entry(name: str, day: date) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(max(day.year, 1980), day.month, day.day, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def write_zip(session: Session, out: BinaryIO, f: MemberFilter | None = None, *, today: date, bom: bool = True,
              progress: Callable[[int], None] | None = None) -> int:
    """plans.csv and members.csv (see members.csvio and plans.csvio) in one zip written to `out`
    (any binary file; it need not be seekable). Returns the number of members. Reads only."""
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(_entry(PLANS_FILENAME, today), plans_csv(session, bom=bom))
        with archive.open(_entry(MEMBERS_FILENAME, today), "w") as members:
            count = csvio.export_members(session, members, f, today=today, bom=bom, progress=progress)
    return count


def write_folder(session: Session, folder: Path, f: MemberFilter | None = None, *, today: date, bom: bool = True,
                 progress: Callable[[int], None] | None = None) -> int:
    """plans.csv and members.csv in `folder` (created when missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PLANS_FILENAME).write_bytes(plans_csv(session, bom=bom))
    with open(folder / MEMBERS_FILENAME, "wb") as out:
        return csvio.export_members(session, out, f, today=today, bom=bom, progress=progress)


@dataclass
class MoveFiles:
    members: Path
    plans: Path | None


def is_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == ZIP_MAGIC
    except OSError:
        return False


def _pick(names: list[str], wanted: str) -> str | None:
    """The entry called `wanted` (at the top or in one folder), any capitals."""
    matches = [n for n in names if not n.endswith("/") and Path(n).name.casefold() == wanted
               and n.count("/") <= 1 and not Path(n).name.startswith("._")]
    return matches[0] if len(matches) == 1 else None


def extract_zip(path: Path, members_to: Path, plans_to: Path, *, max_bytes: int | None = None) -> MoveFiles:
    """Copy members.csv (required) and plans.csv (optional) out of the zip at `path` to
    `members_to` and `plans_to`. Raises csvio.ImportFileError for a zip without members.csv, a broken zip, or (with
    `max_bytes`) entries larger than that once unpacked."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise csvio.ImportFileError("The zip file cannot be read.") from None
    with archive:
        names = archive.namelist()
        members = _pick(names, MEMBERS_FILENAME)
        if members is None:
            listed = ", ".join(n for n in names if not n.endswith("/"))[:200] or "nothing"
            raise csvio.ImportFileError(f"The zip must hold one {MEMBERS_FILENAME} (and a {PLANS_FILENAME}, "
                                        f"as Samiti's export writes them); it holds {listed}.")
        plans = _pick(names, PLANS_FILENAME)
        out = MoveFiles(members=members_to, plans=plans_to if plans else None)
        for name, target in ((members, out.members), (plans, out.plans)):
            if name is None:
                continue
            try:
                with archive.open(name) as src, open(target, "wb") as dst:
                    size = 0
                    while chunk := src.read(1 << 16):
                        size += len(chunk)
                        if max_bytes is not None and size > max_bytes:
                            raise csvio.ImportFileError(
                                f"{name} is larger than {max_bytes // (1024 * 1024)} MB unpacked.")
                        dst.write(chunk)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError):
                raise csvio.ImportFileError(f"{name} in the zip cannot be read.") from None
    return out


@contextmanager
def open_move(path: Path, plans: Path | None = None) -> Iterator[MoveFiles]:
    """The members file and plans file of what `members import` was given: a members CSV (with
    `plans` beside it, or none), a folder holding members.csv and plans.csv, or a zip of them."""
    path = Path(path)
    if path.is_dir():
        members = path / MEMBERS_FILENAME
        if not members.is_file():
            raise csvio.ImportFileError(f"The folder {path} has no {MEMBERS_FILENAME}.")
        found = path / PLANS_FILENAME
        yield MoveFiles(members=members, plans=plans or (found if found.is_file() else None))
    elif is_zip(path):
        folder = Path(tempfile.mkdtemp(prefix="samiti-import-"))
        try:
            files = extract_zip(path, folder / MEMBERS_FILENAME, folder / PLANS_FILENAME)
            if plans is not None:
                files.plans = plans
            yield files
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    else:
        yield MoveFiles(members=path, plans=plans)


def zip_bytes(session: Session, f: MemberFilter | None = None, *, today: date) -> bytes:
    """The whole zip in memory (tests, small instances)."""
    out = io.BytesIO()
    write_zip(session, out, f, today=today)
    return out.getvalue()
