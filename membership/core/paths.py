"""Where the application's files are: the repository's folders in a checkout (editable install),
the copies inside the package once installed from a wheel (setup.py bundles `templates/` and
`migrations/` into `membership/`), and the instance folder for this deployment's own files."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # .../membership
CHECKOUT = PACKAGE.parent  # the repository, when running from a checkout


def is_checkout() -> bool:
    """True when running from the source tree (pyproject.toml and the top-level folders beside
    the package), false for an installed wheel."""
    return (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "templates").is_dir()


def bundled(name: str) -> Path:
    """The folder `name` ("templates", "migrations"): inside the installed package when it is
    there, else the repository's top-level folder. Raises with a clear message when neither is."""
    packaged = resources.files("membership").joinpath(name)
    if packaged.is_dir():
        return Path(str(packaged))
    repo = CHECKOUT / name
    if repo.is_dir():
        return repo
    raise FileNotFoundError(f"Samiti's {name}/ folder is missing: neither {packaged} (installed package) nor "
                            f"{repo} (checkout) exists; reinstall the package")


def templates_dir() -> Path:
    return bundled("templates")


def migrations_dir() -> Path:
    return bundled("migrations")


def default_instance_path() -> Path:
    """SAMITI_INSTANCE_PATH, else `instance/` in the checkout (a development tree keeps its
    database beside the code), else `instance/` in the current directory (an installed package
    has no folder of its own to write to)."""
    configured = os.environ.get("SAMITI_INSTANCE_PATH")
    if configured:
        return Path(configured).expanduser().resolve()
    if is_checkout():
        return CHECKOUT / "instance"
    return Path.cwd() / "instance"
