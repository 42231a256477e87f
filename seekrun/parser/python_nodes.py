"""Python nodes declared with decorators in .py files under the node paths.

Found by reading the file's syntax tree at parse time; user code is never imported
during parse.  (Filled in by issue 4.)
"""
from __future__ import annotations

from pathlib import Path

from seekrun.errors import Diagnostic


def read_python_file(raw: bytes, rel: str, root: Path
                     ) -> tuple[list[dict], list[Diagnostic], list[Diagnostic], list[str]]:
    return [], [], [], []
