"""Only engines/ knows DuckDB or Spark (and warehouse.py, whose file is a DuckDB database); the Spark engine's
plain-Python parts load without PySpark."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "clickstream"
ENGINE_LIBRARIES = {"duckdb", "pyspark", "py4j"}


def imported(path: Path) -> set[str]:
    """The top-level packages a module imports, wherever in it (a function's import counts too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_engines_import_duckdb_or_pyspark():
    outside = {str(path.relative_to(PACKAGE)): sorted(imported(path) & ENGINE_LIBRARIES)
               for path in sorted(PACKAGE.rglob("*.py")) if path.parent.name != "engines"}
    assert {path: libraries for path, libraries in outside.items() if libraries} == {"warehouse.py": ["duckdb"]}


def test_spark_only_code_that_needs_no_spark_loads_without_pyspark():
    # a None entry in sys.modules makes `import pyspark` fail as if it were not installed
    code = ("import sys; sys.modules['pyspark'] = sys.modules['py4j'] = None; "
            "import clickstream.engines.spark_errors, clickstream.engines.spark_formats, clickstream.config")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
