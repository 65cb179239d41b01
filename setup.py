"""The build step the declarative pyproject.toml cannot express: the repository keeps `templates/`
and `migrations/` at its top level (where people look for them), and the wheel carries them inside
the package as `membership/templates` and `membership/migrations`, where `membership.resources`
finds them once installed. Everything else about the package is in pyproject.toml."""
from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# repository folder -> folder inside the `membership` package of the wheel
BUNDLED = {"templates": "templates", "migrations": "migrations"}


class build_py_with_bundled(build_py):
    """build_py, then copy the top-level folders into the built package (build/lib/membership/...)."""

    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads the repository folders themselves
            return
        for source, target in BUNDLED.items():
            src = HERE / source
            if not src.is_dir():  # building from an sdist made without them: fail loudly
                raise FileNotFoundError(f"{src} is missing: the package cannot run without it")
            dest = Path(self.build_lib) / "membership" / target
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": build_py_with_bundled})
