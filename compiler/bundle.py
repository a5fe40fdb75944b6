"""Copy the aprender kernels a generated program calls into one self-contained source text.

Starting from each kernel function, the module-level names it uses (found with ``symtable``, so
names only in annotations do not count) are followed to their definitions in aprender's
modules, recursively, and each definition's source is emitted once, dependencies first.
Imports of the standard library and numpy are kept (one line per name), a top-level
``try``/``if`` block is copied whole (``try: from scipy... except ImportError``), an imported
aprender module (``from . import special``) becomes a ``SimpleNamespace`` of the names used
from it. A kernel that needs anything else (another package, a lambda, an aprender import
inside a function) raises ``CompileError`` naming the op.
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib.util
import inspect
import symtable
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

from ..errors import CompileError

_PACKAGE = __name__.split(".")[0]
#: packages the bundled code may import (beside the standard library)
ALLOWED_PACKAGES = frozenset({"numpy"})
_BUILTINS = frozenset(dir(builtins)) | {"__file__", "__name__"}


def _allowed(module: str) -> bool:
    top = module.split(".")[0]
    return top in ALLOWED_PACKAGES or top in sys.stdlib_module_names


@dataclass
class _Source:
    """One aprender module's text and its top-level statements by the names they define."""

    module: ModuleType
    lines: list[str]
    statements: list[ast.stmt]
    defines: dict[str, list[int]]


def _defined_names(stmt: ast.stmt) -> list[str]:
    """The module-level names a top-level statement binds."""
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [stmt.name]
    if isinstance(stmt, ast.Assign | ast.AnnAssign):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        return [(a.asname or a.name).split(".")[0] for a in stmt.names]
    if isinstance(stmt, ast.Try | ast.If):
        parts = [*stmt.body, *stmt.orelse, *getattr(stmt, "finalbody", [])]
        parts += [s for h in getattr(stmt, "handlers", []) for s in h.body]
        return [name for s in parts for name in _defined_names(s)]
    return []


@functools.lru_cache(maxsize=64)
def _source(module_name: str) -> _Source:
    module = sys.modules[module_name]
    text = inspect.getsource(module)
    statements = ast.parse(text).body
    defines: dict[str, list[int]] = {}
    for i, stmt in enumerate(statements):
        for name in _defined_names(stmt):
            defines.setdefault(name, []).append(i)
    return _Source(module, text.splitlines(), statements, defines)


def _free_names(text: str) -> set[str]:
    """Names ``text`` (top-level statements) reads from its module's global scope."""
    table = symtable.symtable("from __future__ import annotations\n" + text, "<bundle>", "exec")
    names: set[str] = set()

    def visit(t: symtable.SymbolTable) -> None:
        for s in t.get_symbols():
            if t.get_type() == "module" and s.is_referenced() or \
                    t.get_type() != "module" and s.is_global() and s.is_referenced():
                names.add(s.get_name())
        for child in t.get_children():
            visit(child)

    visit(table)
    return names - {"annotations"}


def _nested_import_problem(stmt: ast.stmt) -> str:
    """Why an import inside ``stmt`` cannot be in a standalone file ("" when every one can)."""
    guarded = isinstance(stmt, ast.Try)
    for node in ast.walk(stmt):
        if not isinstance(node, ast.Import | ast.ImportFrom) or node is stmt:
            continue
        level = getattr(node, "level", 0)
        module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
        if _internal(module, level):
            return f"it imports from aprender ({'.' * level}{module or ''}) when it runs"
        if not guarded and not _allowed(module or ""):
            return f"it imports {module} when it runs"
    return ""


@functools.lru_cache(maxsize=1024)
def _analysis(module_name: str, index: int) -> tuple[str, tuple[str, ...], str]:
    """A top-level statement's source (decorators included), the module-level names it
    reads (sorted) and why it cannot be copied ("" if it can)."""
    src = _source(module_name)
    stmt = src.statements[index]
    first = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])
    text = "\n".join(src.lines[first - 1:stmt.end_lineno]) + "\n"
    used = _free_names(text) - set(_defined_names(stmt))
    return text, tuple(sorted(used)), _nested_import_problem(stmt)


def _internal(module: str | None, level: int) -> bool:
    return level > 0 or (module or "").split(".")[0] == _PACKAGE


def _import_line(stmt: ast.Import | ast.ImportFrom, alias: ast.alias) -> str:
    as_part = f" as {alias.asname}" if alias.asname else ""
    if isinstance(stmt, ast.Import):
        return f"import {alias.name}{as_part}"
    return f"from {stmt.module} import {alias.name}{as_part}"


@dataclass
class Bundle:
    """Kernels copied out of aprender (``add_kernel``): import lines, definitions (in
    dependency order), and the namespaces that stand for imported aprender modules."""

    imports: list[str] = field(default_factory=list)
    definitions: list[str] = field(default_factory=list)
    namespaces: dict[str, tuple[str, set[str]]] = field(default_factory=dict)
    #: top-level name -> what defines it (to catch two helpers sharing a name)
    owners: dict[str, str] = field(default_factory=dict)
    _done: set[tuple[str, int]] = field(default_factory=set)
    _op: str = ""

    def _fail(self, why: str) -> CompileError:
        return CompileError(f"standalone export: the kernel of op {self._op} cannot be copied "
                            f"out of aprender: {why}")

    def _own(self, name: str, owner: str) -> None:
        if self.owners.setdefault(name, owner) != owner:
            raise self._fail(f"the name {name} is defined by both {self.owners[name]} and "
                             f"{owner}")

    # --- names ---------------------------------------------------------------------------------
    def need(self, module_name: str, name: str) -> None:
        """Emit what defines ``name`` in ``module_name`` (and what that needs)."""
        src = _source(module_name)
        if name not in src.defines:
            if name in _BUILTINS:
                return
            raise self._fail(f"{module_name} has no top-level definition of {name}")
        for index in src.defines[name]:
            stmt = src.statements[index]
            if isinstance(stmt, ast.Import | ast.ImportFrom):
                self._import(module_name, stmt, name)
            else:
                self._statement(module_name, index)

    def _import(self, module_name: str, stmt: ast.Import | ast.ImportFrom, name: str) -> None:
        alias = next(a for a in stmt.names if (a.asname or a.name).split(".")[0] == name)
        level = getattr(stmt, "level", 0)
        module = stmt.module if isinstance(stmt, ast.ImportFrom) else alias.name
        if not _internal(module, level):
            if not _allowed(module or ""):
                raise self._fail(f"it imports {module}, which a standalone file cannot assume "
                                 f"(only numpy and the standard library)")
            line = _import_line(stmt, alias)
            self._own(name, line)
            if line not in self.imports:
                self.imports.append(line)
            return
        if isinstance(stmt, ast.Import):
            raise self._fail(f"{module_name} imports the module {alias.name}")
        package = sys.modules[module_name].__spec__.parent
        target = importlib.util.resolve_name("." * level + (module or ""), package)
        sub = sys.modules.get(f"{target}.{alias.name}")
        if sub is not None and getattr(sys.modules[target], alias.name, None) is sub:
            self._own(name, f"module {sub.__name__}")
            self.namespaces.setdefault(name, (sub.__name__, set()))
            return
        self.need(target, alias.name)
        if name != alias.name:
            self._own(name, f"{module_name}.{name}")
            self.definitions.append(f"{name} = {alias.name}\n")

    def _statement(self, module_name: str, index: int) -> None:
        if (module_name, index) in self._done:
            return
        self._done.add((module_name, index))
        src = _source(module_name)
        stmt = src.statements[index]
        for name in _defined_names(stmt):
            self._own(name, f"{module_name}.{name}")
        text, used, problem = _analysis(module_name, index)
        if problem:
            raise self._fail(problem)
        for name in used:
            if name in src.defines:
                self.need(module_name, name)
                if name in self.namespaces:
                    self._namespace_uses(stmt, name)
            elif name not in _BUILTINS:
                raise self._fail(f"{module_name} uses {name}, which it does not define")
        path = module_name.replace(".", "/") + ".py"
        self.definitions.append(f"# from {path}\n{text}")

    def _namespace_uses(self, stmt: ast.stmt, name: str) -> None:
        module_name, attrs = self.namespaces[name]
        for node in ast.walk(stmt):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    node.value.id == name and node.attr not in attrs:
                attrs.add(node.attr)
                self.need(module_name, node.attr)

    # --- kernels -------------------------------------------------------------------------------
    def add_kernel(self, op_name: str, impl: Callable) -> str:
        """Bundle the kernel of ``op_name``; returns the expression naming it in the bundle."""
        self._op = op_name
        module_name = getattr(impl, "__module__", None) or ""
        name = getattr(impl, "__name__", "")
        if module_name.split(".")[0] == "numpy" and getattr(sys.modules["numpy"], name,
                                                            None) is impl:
            self.need_import("numpy", "np")
            return f"np.{name}"
        module = sys.modules.get(module_name)
        if module is None or module_name.split(".")[0] != _PACKAGE or \
                getattr(module, name, None) is not impl:
            raise self._fail(f"its kernel {impl!r} is not a module-level function of aprender")
        self.need(module_name, name)
        return name

    def need_import(self, module: str, alias: str) -> None:
        line = f"import {module} as {alias}" if module != alias else f"import {module}"
        self._own(alias, line)
        if line not in self.imports:
            self.imports.append(line)

    def reserve(self, names: list[str], owner: str) -> None:
        """Names the file defines around the bundle: a helper of that name is an error."""
        for name in names:
            self._own(name, owner)

    def import_lines(self) -> list[str]:
        """The bundle's imports, numpy's and ``types``' included."""
        self.need_import("numpy", "np")
        if self.namespaces:
            self.need_import("types", "types")
        return list(self.imports)

    def body(self) -> str:
        """The bundle's definitions, then the namespaces of imported aprender modules."""
        parts = list(self.definitions)
        for alias, (module_name, attrs) in sorted(self.namespaces.items()):
            items = ", ".join(f"{a}={a}" for a in sorted(attrs))
            parts.append(f"# the names used from {module_name}\n"
                         f"{alias} = types.SimpleNamespace({items})\n")
        return "\n\n".join(p.rstrip("\n") + "\n" for p in parts)
