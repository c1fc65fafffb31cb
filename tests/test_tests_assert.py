"""Every test checks something that could fail (issue 10, item 22): a test that
only runs code passes by ending, whatever the code did.

A test (a test* function of a test_*.py or *_test.py file, at module level or
a method of a Test* class, sync or async) checks when its own body has

- an assert whose condition is not a constant,
- pytest.raises, pytest.fail, pytest.warns or pytest.deprecated_call,
- a raise of AssertionError,
- a call to a function named as a check (assert_*, expect_*, check_*: mock's
  assert_called_once_with, subprocess.check_output), or
- a call to a helper of the tests tree whose own body checks in one of the
  ways above (one level deep).

A helper is found through the names the test's module binds: its own
functions, self.<method> in a class, and what it imports from the tests tree.
A function of the same name elsewhere vouches for nothing, so a helper that
checks nothing cannot hide behind a namesake that does.
"""

import ast
import fnmatch
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
TEST_FILES = ("test_*.py", "*_test.py")
PYTEST_CHECKS = frozenset({"raises", "fail", "warns", "deprecated_call"})
CHECK_PREFIXES = ("assert_", "expect_", "check_")

Function = ast.FunctionDef | ast.AsyncFunctionDef
# A function of the tests tree: its file and its name there ("Class.method" for a method).
Key = tuple[Path, str]


def unchecked_tests(root: Path) -> list[str]:
    """'path:line name' of every test under root that checks nothing."""
    modules = {path: ast.parse(path.read_text(), str(path)) for path in sorted(root.rglob("*.py"))}
    checking = {
        (path, name)
        for path, tree in modules.items()
        for name, function in _functions(tree)
        if checks_itself(function)
    }
    found = []
    for path, tree in modules.items():
        if not any(fnmatch.fnmatch(path.name, pattern) for pattern in TEST_FILES):
            continue
        scope = _Scope(path, tree, root)
        for owner, test in _tests(tree):
            calls = (node for node in _body_nodes(test) if isinstance(node, ast.Call))
            if checks_itself(test) or any(scope.resolve(c.func, owner) in checking for c in calls):
                continue
            name = f"{owner}.{test.name}" if owner else test.name
            found.append(f"{path.relative_to(root.parent)}:{test.lineno} {name}")
    return found


def checks_itself(function: Function) -> bool:
    """Whether the function's own body asserts, expects a failure, or calls
    something named as a check."""
    for node in _body_nodes(function):
        if isinstance(node, ast.Assert) and not isinstance(node.test, ast.Constant):
            return True
        if isinstance(node, ast.Raise) and _is_assertion_error(node.exc):
            return True
        if isinstance(node, ast.Call) and _is_check_call(node.func):
            return True
    return False


def _body_nodes(function: Function) -> Iterator[ast.AST]:
    # The body only: a decorator such as pytest.mark.parametrize checks nothing.
    for statement in function.body:
        yield from ast.walk(statement)


def _is_assertion_error(exc: ast.expr | None) -> bool:
    raised = exc.func if isinstance(exc, ast.Call) else exc
    return isinstance(raised, ast.Name) and raised.id == "AssertionError"


def _is_check_call(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):
        if isinstance(func.value, ast.Name) and func.value.id == "pytest":
            return func.attr in PYTEST_CHECKS
        return func.attr.startswith(CHECK_PREFIXES)
    return isinstance(func, ast.Name) and func.id.startswith(CHECK_PREFIXES)


def _functions(tree: ast.Module) -> Iterator[tuple[str, Function]]:
    """The module's functions and its classes' methods, by their names in it."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                    yield f"{node.name}.{member.name}", member


def _tests(tree: ast.Module) -> Iterator[tuple[str, Function]]:
    """(class name or "", function) of every test pytest collects from the module."""
    for name, function in _functions(tree):
        owner, _, own_name = name.rpartition(".")
        if own_name.startswith("test") and (not owner or owner.startswith("Test")):
            yield owner, function


class _Scope:
    """The names one module of the tests tree binds to functions of that tree."""

    def __init__(self, path: Path, tree: ast.Module, root: Path) -> None:
        self._path = path
        self.functions: dict[str, Key] = {name: (path, name) for name, _ in _functions(tree)}
        self.modules: dict[str, Path] = {}
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                source = _module_file(node.module, path, root)
                for alias in node.names:
                    bound = alias.asname or alias.name
                    # `from package import module` binds a module, not a function.
                    submodule = _module_file(f"{node.module}.{alias.name}", path, root)
                    if submodule is not None:
                        self.modules[bound] = submodule
                    elif source is not None:
                        self.functions[bound] = (source, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    source = _module_file(alias.name, path, root)
                    if source is not None:
                        self.modules[alias.asname or alias.name] = source

    def resolve(self, func: ast.expr, owner: str) -> Key | None:
        """The function of the tests tree that a call of func in a method of
        owner (or at module level, for "") runs, if the module says which."""
        if isinstance(func, ast.Name):
            return self.functions.get(func.id)
        if not isinstance(func, ast.Attribute):
            return None
        target = ast.unparse(func.value)
        if target == "self" and owner:
            return (self._path, f"{owner}.{func.attr}")
        source = self.modules.get(target)
        return None if source is None else (source, func.attr)


def _module_file(dotted: str, importer: Path, root: Path) -> Path | None:
    """The file of the tests tree that `import dotted` loads for the importer:
    tests/ is on the path, and so is the importer's own directory wherever its
    conftest puts it there (as tests/deploy's does)."""
    relative = Path(*dotted.split("."))
    for base in (root, importer.parent):
        for candidate in (base / relative.with_suffix(".py"), base / relative / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def test_every_test_checks_something():
    unchecked = unchecked_tests(TESTS)
    assert unchecked == [], "tests that pass by ending:\n" + "\n".join(unchecked)


# The detector itself, on small trees: (files, the tests it must report).
CASES = {
    "no check at all": ({"test_a.py": "def test_a():\n    run()\n"}, ["test_a"]),
    "an assert": ({"test_a.py": "async def test_a():\n    assert run()\n"}, []),
    "an assert of a constant": ({"test_a.py": "def test_a():\n    assert True\n"}, ["test_a"]),
    "pytest.raises": (
        {"test_a.py": "def test_a():\n    with pytest.raises(E):\n        run()\n"},
        [],
    ),
    "a raise of AssertionError": (
        {"test_a.py": "def test_a():\n    if run():\n        raise AssertionError('no')\n"},
        [],
    ),
    "a mock's check": ({"test_a.py": "def test_a(m):\n    m.assert_called_once_with(1)\n"}, []),
    "a method of a Test class": (
        {"test_a.py": "class TestA:\n    def test_m(self):\n        run()\n"},
        ["TestA.test_m"],
    ),
    "a method whose helper method asserts": (
        {
            "test_a.py": "class TestA:\n    def ok(self, x):\n        assert x\n\n"
            "    async def test_m(self):\n        self.ok(run())\n"
        },
        [],
    ),
    "a local helper that asserts": (
        {"test_a.py": "def settle(x):\n    assert x\n\ndef test_a():\n    settle(run())\n"},
        [],
    ),
    "a local helper that checks nothing": (
        {"test_a.py": "def settle(x):\n    return x\n\ndef test_a():\n    settle(run())\n"},
        ["test_a"],
    ),
    "a helper imported from the tests tree": (
        {
            "harness.py": "def settle(x):\n    assert x\n",
            "sub/test_a.py": "from harness import settle\n\ndef test_a():\n    settle(run())\n",
        },
        [],
    ),
    "a helper module imported whole": (
        {
            "harness.py": "def settle(x):\n    assert x\n",
            "test_a.py": "import harness\n\ndef test_a():\n    harness.settle(run())\n",
        },
        [],
    ),
    "a helper module imported from its package": (
        {
            "support/__init__.py": "",
            "support/harness.py": "def settle(x):\n    assert x\n",
            "test_a.py": "from support import harness\n\n"
            "def test_a():\n    harness.settle(run())\n",
        },
        [],
    ),
    "a helper imported from a package's module": (
        {
            "support/__init__.py": "",
            "support/harness.py": "def settle(x):\n    return x\n",
            "sub/test_a.py": "from support.harness import settle\n\n"
            "def test_a():\n    settle(run())\n",
        },
        ["test_a"],
    ),
    "a namesake elsewhere vouches for nothing": (
        {
            "harness.py": "def settle(x):\n    return x\n",
            "other.py": "def settle(x):\n    assert x\n",
            "test_a.py": "from harness import settle\n\ndef test_a():\n    settle(run())\n",
        },
        ["test_a"],
    ),
    "a test-named function outside a test file": (
        {"harness.py": "def test_like():\n    run()\n"},
        [],
    ),
}


@pytest.mark.parametrize(("files", "expected"), CASES.values(), ids=CASES.keys())
def test_the_detector_reports_exactly_the_tests_that_check_nothing(tmp_path, files, expected):
    root = tmp_path / "tests"
    for name, source in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(source)
    reported = [entry.split(" ", 1)[1] for entry in unchecked_tests(root)]
    assert reported == expected
