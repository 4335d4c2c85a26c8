"""Which names a template reads from outside: Jinja's scoping, walked in order.

A name is local where Jinja binds it: ``{% set %}`` (after the value), ``{% for %}``
targets and ``loop`` (inside the loop), ``{% macro %}`` names (after the definition)
and parameters with ``caller``, ``varargs`` and ``kwargs`` (inside the macro),
``{% call %}`` parameters, ``{% with %}`` targets, imports, and ``self``/``super`` in
blocks. Everything else read is free: a root (``inputs``, ``steps``, ...), a global,
or unknown. A cheap stand-in for ``jinja2.meta.find_undeclared_variables``, which runs
the whole code generator and ignores order.
"""

from __future__ import annotations

from typing import Any, Iterable

from jinja2 import nodes

_CALLABLE_LOCALS = ("caller", "varargs", "kwargs")


class _Walker:
    def __init__(self) -> None:
        self.scopes: list[set[str]] = [set()]
        self.free: list[nodes.Name] = []

    # -- scopes ----------------------------------------------------------------------
    def bound(self, name: str) -> bool:
        return any(name in s for s in self.scopes)

    def bind(self, target: Any) -> None:
        """Bind every name a ``store`` target (a Name, or a Tuple of them) assigns."""
        if isinstance(target, nodes.Name):
            self.scopes[-1].add(target.name)
        elif isinstance(target, (nodes.Tuple, nodes.List)):
            for item in target.items:
                self.bind(item)

    def inner(self, *names: str) -> None:
        self.scopes.append(set(names))

    def outer(self) -> None:
        self.scopes.pop()

    # -- walking ---------------------------------------------------------------------
    def visit(self, node: Any) -> None:
        if node is None:
            return
        if isinstance(node, list):
            for item in node:
                self.visit(item)
            return
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is not None:
            method(node)
        else:
            self.visit_children(node)

    def visit_children(self, node: nodes.Node) -> None:
        for child in node.iter_child_nodes():
            self.visit(child)

    def visit_Name(self, node: nodes.Name) -> None:
        if node.ctx == "load" and not self.bound(node.name):
            self.free.append(node)

    def visit_Assign(self, node: nodes.Assign) -> None:
        self.visit(node.node)
        self.visit_target(node.target)

    def visit_AssignBlock(self, node: nodes.AssignBlock) -> None:
        self.visit(node.body)
        self.visit(node.filter)
        self.visit_target(node.target)

    def visit_target(self, target: Any) -> None:
        if isinstance(target, nodes.NSRef):  # {% set ns.attr = ... %} reads ns
            if not self.bound(target.name):
                self.free.append(nodes.Name(target.name, "load", lineno=target.lineno))
        else:
            self.bind(target)

    def visit_For(self, node: nodes.For) -> None:
        self.visit(node.iter)
        self.inner("loop")
        self.bind(node.target)
        self.visit(node.test)
        self.visit(node.body)
        self.outer()
        self.visit(node.else_)

    def visit_Macro(self, node: nodes.Macro) -> None:
        self.visit(node.defaults)
        self.scopes[-1].add(node.name)  # before the body: a macro may call itself
        self._callable(node.args, node.body)

    def visit_CallBlock(self, node: nodes.CallBlock) -> None:
        self.visit(node.call)
        self.visit(node.defaults)
        self._callable(node.args, node.body)

    def _callable(self, args: Iterable[nodes.Name], body: list[nodes.Node]) -> None:
        self.inner(*_CALLABLE_LOCALS)
        for arg in args:
            self.bind(arg)
        self.visit(body)
        self.outer()

    def visit_With(self, node: nodes.With) -> None:
        self.visit(node.values)
        self.inner()
        for target in node.targets:
            self.bind(target)
        self.visit(node.body)
        self.outer()

    def visit_Block(self, node: nodes.Block) -> None:
        self.inner("super")
        self.visit(node.body)
        self.outer()

    def visit_Import(self, node: nodes.Import) -> None:
        self.visit(node.template)
        self.scopes[-1].add(node.target)

    def visit_FromImport(self, node: nodes.FromImport) -> None:
        self.visit(node.template)
        for name in node.names:
            self.scopes[-1].add(name[1] if isinstance(name, tuple) else name)


def free_names(tree: nodes.Template) -> list[nodes.Name]:
    """Every ``Name`` node the template reads that no enclosing scope binds, in order."""
    walker = _Walker()
    if any(True for _ in tree.find_all(nodes.Block)):
        walker.scopes[0].add("self")
    walker.visit(tree.body)
    return walker.free
