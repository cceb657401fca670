"""Where the demos find their files and where they write theirs (hitless_demo.paths)."""

from __future__ import annotations

import ast
import subprocess
import sys

from hitless_demo.localrun import netapi_argv
from hitless_demo.paths import NETAPI_DIR, NETAPI_ROOT, OPENSTACK_DIR, work_dir


def _top_level_imports(package) -> set[str]:
    """The first part of every absolute import in the package's modules."""
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_the_demo_files_are_package_data_beside_the_modules():
    assert (NETAPI_DIR / "Dockerfile").is_file() and (NETAPI_DIR / "hitless.yaml").is_file()
    assert NETAPI_DIR.parent == NETAPI_ROOT and (NETAPI_ROOT / "netapi" / "__main__.py").is_file()
    assert (OPENSTACK_DIR / "hitless.yaml").is_file() and (OPENSTACK_DIR / "wsgi-serve").is_file()


def test_nothing_beside_netapi_shadows_what_it_imports():
    """`python3 -m netapi` runs from NETAPI_ROOT, which is then first on its sys.path: a module
    there named like one netapi imports (absolutely) would be imported instead."""
    beside = {p.stem for p in NETAPI_ROOT.glob("*.py")} | {p.name for p in NETAPI_ROOT.iterdir() if p.is_dir()}
    imported = _top_level_imports(NETAPI_DIR)
    assert "netapi" not in imported, "netapi imports itself relatively (it is also hitless_demo.netapi)"
    assert imported & beside == set()


def test_python3_m_netapi_from_netapi_root_finds_the_demo_package():
    """As `python3 -m netapi` finds it there (the image's /opt/netapi is the same layout)."""
    assert netapi_argv()[1:] == ["-m", "netapi"]
    found = subprocess.run([sys.executable, "-c", "import netapi; print(netapi.__file__)"], cwd=NETAPI_ROOT,
                           capture_output=True, text=True, timeout=30)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == str(NETAPI_DIR / "__init__.py")


def test_a_demo_writes_under_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    made = work_dir("netapi")
    assert made == tmp_path / "hitless-demo" / "netapi" and made.is_dir()
    assert work_dir("openstack").parent == made.parent
