"""The house holds as docs/architecture.md draws it: every module on one floor of its table,
no import from a floor above, no circle, no function-level import to dodge one, and one way
into the services."""

import ast
import re
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("chatsite", "streaming")
# Where a function-level import of the project's own modules is the rule, not a dodge:
# Django calls AppConfig.ready once every app is loaded, and signals are connected there.
LATE_IMPORTS_ALLOWED = {ROOT / "streaming" / "apps.py"}

N = TypeVar("N", bound=Hashable)


def modules() -> list[Path]:
    """Every Python module of the application (not its migrations, nor the empty files that
    only mark a folder as a package)."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.relative_to(ROOT).parts:
                continue
            if path.name == "__init__.py" and not path.read_text(encoding="utf-8").strip():
                continue
            found.append(path)
    return found


def floors() -> dict[Path, int]:
    """Each module's floor, from the table of docs/architecture.md."""
    table = re.search(r"^\| floor \|.*?\n((?:\|.*\n)+)", DOC.read_text(encoding="utf-8"), re.M)
    assert table is not None, "docs/architecture.md has no table of floors"
    floor_of: dict[Path, int] = {}
    for row in table.group(1).splitlines()[1:]:  # the first is the |---| line
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        floor = int(cells[0])
        for named in re.findall(r"`([^`]+)`", cells[1]):
            target = ROOT / named
            assert target.exists(), f"docs/architecture.md names {named}, which does not exist"
            for path in sorted(target.rglob("*.py")) if target.is_dir() else [target]:
                assert path not in floor_of, f"{named} is on two floors"
                floor_of[path] = floor
    return floor_of


def resolve(name: str) -> Path | None:
    """The module file a dotted name of the project's denotes, or None (not ours)."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imports(path: Path) -> Iterator[tuple[Path, bool]]:
    """The project's modules ``path`` imports, each with whether the import is at module
    level (True) or inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        targets: set[Path | None] = set()
        if isinstance(node, ast.Import):
            targets = {resolve(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from streaming import control`: the submodule; `from x.y import name`: x.y.
            for alias in node.names:
                targets.add(resolve(f"{node.module}.{alias.name}") or resolve(node.module))
        for target in targets - {None, path}:
            assert target is not None
            yield target, id(node) in top_level


def name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_every_module_is_on_a_floor_of_the_table() -> None:
    floor_of = floors()
    missing = [name(path) for path in modules() if path not in floor_of]
    assert missing == [], "add these to the table of docs/architecture.md"


def test_no_module_imports_from_a_floor_above_it() -> None:
    floor_of = floors()
    upward = [
        f"{name(path)} (floor {floor_of[path]}) imports {name(target)} (floor {floor_of[target]})"
        for path in modules()
        for target, _ in imports(path)
        if floor_of[target] > floor_of[path]
    ]
    assert upward == []


def test_the_imports_form_no_circle() -> None:
    graph = {path: {target for target, top in imports(path) if top} for path in modules()}
    circles = [sorted(map(name, group)) for group in strongly_connected(graph) if len(group) > 1]
    assert circles == []


def test_no_function_level_import_of_our_own_modules() -> None:
    late = [
        f"{name(path)} imports {name(target)} inside a function"
        for path in modules()
        if path not in LATE_IMPORTS_ALLOWED
        for target, top in imports(path)
        if not top
    ]
    assert late == []


def test_the_services_package_reexports_nothing() -> None:
    """One way into the services: the module that defines a name."""
    package = ast.parse((ROOT / "streaming" / "services" / "__init__.py").read_text())
    assert [node for node in package.body if not isinstance(node, ast.Expr)] == []


def test_no_service_waits_on_an_event_loop() -> None:
    """Services queue their events (events.on_commit); none runs a coroutine to completion
    from a database thread."""
    for path in sorted((ROOT / "streaming" / "services").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        used |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        used |= {
            a.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            for a in node.names
        }
        assert not used & {"async_to_sync", "AsyncToSync"}, name(path)


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({1: {2}, 2: {3}, 3: set()}, []),
        ({1: {2}, 2: {3}, 3: {1}}, [[1, 2, 3]]),
        ({1: {2}, 2: {1}, 3: {3}}, [[1, 2]]),
    ],
)
def test_circles_are_found(graph: dict[int, set[int]], expected: list[list[int]]) -> None:
    """The circle finder itself, so the test above can fail."""
    found = [sorted(group) for group in strongly_connected(graph) if len(group) > 1]
    assert found == expected


def strongly_connected(graph: dict[N, set[N]]) -> list[set[N]]:
    """Tarjan's strongly connected components of ``graph`` (node: the nodes it points to)."""
    index: dict[N, int] = {}
    low: dict[N, int] = {}
    stack: list[N] = []
    on_stack: set[N] = set()
    groups: list[set[N]] = []

    def visit(node: N) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, set()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            groups.append(group)

    for node in graph:
        if node not in index:
            visit(node)
    return groups
