"""Every port a test uses derives from the test offset (RAE_TEST_PORT_OFFSET): no test file names a
port offset or a port of the stack itself, so test sessions beside a developer stack, the bench
stack or each other never share a port (docs/DEVELOPMENT.md, "Ports of the tests")."""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path

from rae_localstack import BASE_PORTS

ROOT = Path(__file__).resolve().parents[1]
STACK_PORTS = frozenset(BASE_PORTS.values())
OFFSET_VARS = frozenset({"RAE_TEST_PORT_OFFSET", "RAE_LOCAL_PORT_OFFSET"})
# The root conftest is where the test offset is read, once, for every test.
OFFSET_READER = ROOT / "conftest.py"
# The chart tests check the container ports of the Helm chart's pods: fixed by the chart, never
# bound on this machine.
NOT_LOCAL_PORTS = (ROOT / "tests" / "charts",)
# A local port below 1024 is a closed port on purpose (nothing the stack or a test starts binds there).
FIRST_OPEN_PORT = 1024
HOST_PORT = re.compile(r"(?:127\.0\.0\.1|localhost|0\.0\.0\.0|\[::1\]):(\d+)")
SHELL_OFFSET = re.compile(r"(?:--port-offset[= ]+|PORT_OFFSET=)['\"]?\d")
SKIPPED_DIRS = {"node_modules", "__pycache__"}


def scanned_files(root: Path = ROOT) -> Iterator[Path]:
    """Test modules, conftests and shell scripts under a tests directory (but this file, which
    holds the bad examples the scan must find)."""
    for current, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS]
        here = Path(current)
        in_tests = "tests" in here.relative_to(root).parts
        for name in files:
            path = here / name
            is_test = name == "conftest.py" or (in_tests and name.endswith((".py", ".sh", ".bash")))
            if is_test and path != Path(__file__).resolve():
                yield path


def _numbers(node: ast.AST) -> list[int | float]:
    """Numeric literals in an expression, except indices (`sock.getsockname()[1]` is no port)."""
    indices = {id(n.slice) for n in ast.walk(node) if isinstance(n, ast.Subscript)}
    return [
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant)
        and isinstance(n.value, int | float)
        and not isinstance(n.value, bool)
        and id(n) not in indices
    ]


def _is_port_name(name: str) -> bool:
    parts = name.lower().split("_")
    return "port" in parts or "ports" in parts or ("offset" in parts and name.isupper())


def _local_ports(text: str) -> list[int]:
    return [int(p) for p in HOST_PORT.findall(text) if int(p) >= FIRST_OPEN_PORT]


def python_findings(source: str, *, reads_offset: bool = False, local_ports: bool = True) -> list[str]:
    """Hard-coded ports and port offsets in a Python test file, as `line: what` strings."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and local_ports:
            if isinstance(node.value, int) and not isinstance(node.value, bool) and node.value in STACK_PORTS:
                found.append(f"{line}: port {node.value} of the stack")
            elif isinstance(node.value, str):
                found += [f"{line}: local port {p}" for p in _local_ports(node.value)]
        elif isinstance(node, ast.keyword) and node.arg in ("port_offset", "port") and _numbers(node.value):
            found.append(f"{line}: {node.arg}= from a literal")
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if any(_is_port_name(n) for n in names) and _numbers(node.value) and local_ports:
                found.append(f"{line}: {', '.join(names)} from a literal")
        elif isinstance(node, ast.Call) and not reads_offset:
            func = node.func
            is_stack = isinstance(func, ast.Name) and func.id == "Stack"
            if is_stack and len(node.args) > 1 and _numbers(node.args[1]):
                found.append(f"{line}: Stack port offset from a literal")
            args = [a.value for a in node.args if isinstance(a, ast.Constant)]
            if OFFSET_VARS & set(args):
                found.append(f"{line}: reads the port offset itself (use the sub_stack_offset fixture)")
        elif isinstance(node, ast.Subscript) and not reads_offset:
            key = node.slice
            if isinstance(key, ast.Constant) and key.value in OFFSET_VARS:
                found.append(f"{line}: reads the port offset itself (use the sub_stack_offset fixture)")
    return found


def shell_findings(source: str) -> list[str]:
    found: list[str] = []
    for number, text in enumerate(source.splitlines(), start=1):
        if SHELL_OFFSET.search(text):
            found.append(f"{number}: port offset from a literal")
        found += [f"{number}: local port {p}" for p in _local_ports(text)]
    return found


def findings(path: Path) -> list[str]:
    source = path.read_text()
    if path.suffix != ".py":
        return shell_findings(source)
    local_ports = not any(path.is_relative_to(d) for d in NOT_LOCAL_PORTS)
    return python_findings(source, reads_offset=path == OFFSET_READER, local_ports=local_ports)


def test_no_test_file_hard_codes_a_port_or_a_port_offset() -> None:
    files = list(scanned_files())
    assert len(files) > 50, "the scan found too few test files to be looking in the right place"
    bad = {str(path.relative_to(ROOT)): found for path in files if (found := findings(path))}
    assert bad == {}


def test_the_scan_finds_each_kind_of_hard_coded_port() -> None:
    bad = {
        "OFFSET = 3000": 1,
        "LONE_BROKER_OFFSET = int(os.environ.get('RAE_TEST_PORT_OFFSET', '1000')) + 100": 2,
        "Stack(tmp_path, port_offset=4100, env={})": 1,
        "Stack(tmp_path, OFFSET + 2)": 1,
        "x = os.environ['RAE_LOCAL_PORT_OFFSET']": 1,
        "url = f'postgresql://rae:rae@127.0.0.1:{25432 + offset}/rae'": 1,
        "gateway = 'http://localhost:8000/v1'": 1,
        "port = 9092": 1,
        "redis_port: int = 16379": 2,
        "port = sock.getsockname()[1] + 1": 1,
    }
    for source, count in bad.items():
        assert len(python_findings(source)) == count, source
    assert shell_findings("python -m rae_localstack --port-offset 3000 up") != []
    assert shell_findings("RAE_TEST_PORT_OFFSET=4100 pytest") != []
    assert shell_findings("curl -s 127.0.0.1:8000/healthz") != []
    good = [
        "DOWN = 'http://127.0.0.1:9'",  # closed on purpose
        "offset = 0",  # a text offset, not a port
        "port = sock.getsockname()[1]",  # a free port the kernel chose
        "REPORT = 'Kim reports to Maria'",
        "Stack(tmp_path, port_offset=sub_stack_offset('outbox-broker'), env={})",
        "url = f'http://127.0.0.1:{stack.port(\"gateway\")}'",
        "STACK_ONLY = {'RAE_TEST_STATE_DIR', 'RAE_TEST_PORT_OFFSET'}",
        "env = {'RAE_LOCAL_PORT_OFFSET': str(offset)}",
    ]
    for source in good:
        assert python_findings(source) == [], source
    # The root conftest reads the setting (and only it).
    reader = "offset = int(os.environ.get('RAE_TEST_PORT_OFFSET', '1000'))"
    assert python_findings(reader, reads_offset=True) == []
    assert python_findings(reader) != []


def test_sub_stacks_never_share_a_port_with_each_other_or_the_session(sub_stack_offset) -> None:
    offsets = {"session": sub_stack_offset.session} | {
        name: sub_stack_offset(name) for name in sub_stack_offset.slots
    }
    assert len(set(offsets.values())) == len(offsets)
    for (a, offset_a), (b, offset_b) in combinations(offsets.items(), 2):
        ports_a = {base + offset_a for base in STACK_PORTS}
        ports_b = {base + offset_b for base in STACK_PORTS}
        assert not ports_a & ports_b, (a, b)
    # Every slot stays below the next session's offset (sessions are 1000 apart: 1000 tests, 2000 bench).
    assert all(0 < slot < 1000 for slot in sub_stack_offset.slots.values())
