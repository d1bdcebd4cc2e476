"""FHIRPath parser: tokens to a small AST, by precedence climbing (FHIRPath N1 section 10).

Precedence, loosest first: ``implies``; ``or xor``; ``and``; ``in contains``; ``= ~ != !~``;
``< > <= >=``; ``|``; ``is as``; ``+ - &``; ``* / div mod``; unary ``+ -``; ``.`` and ``[]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.sof.errors import ViewDefinitionError
from adapters.sof.lexer import Tok, Token, tokenize


@dataclass(frozen=True, slots=True)
class Literal:
    values: tuple[Any, ...]  # a literal is a collection: () for {}, (x,) otherwise
    type_name: str


@dataclass(frozen=True, slots=True)
class External:
    name: str


@dataclass(frozen=True, slots=True)
class Special:
    name: str  # this | index | total


@dataclass(frozen=True, slots=True)
class Member:
    """``name`` navigated from ``target`` (or from the focus when ``target`` is None)."""

    target: Node | None
    name: str


@dataclass(frozen=True, slots=True)
class Call:
    target: Node | None
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Index:
    target: Node
    index: Node


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class TypeOp:
    op: str  # is | as
    operand: Node
    type_name: str


Node = Literal | External | Special | Member | Call | Index | Unary | Binary | TypeOp

_LEVELS: tuple[frozenset[str], ...] = (
    frozenset({"implies"}),
    frozenset({"or", "xor"}),
    frozenset({"and"}),
    frozenset({"in", "contains"}),
    frozenset({"=", "~", "!=", "!~"}),
    frozenset({"<", ">", "<=", ">="}),
    frozenset({"|"}),
    frozenset({"is", "as"}),
    frozenset({"+", "-", "&"}),
    frozenset({"*", "/", "div", "mod"}),
)
_WORD_OPS = frozenset().union(*_LEVELS) - {"=", "~", "!=", "!~", "<", ">", "<=", ">=", "|"}
_WORD_OPS -= {"+", "-", "&", "*", "/"}


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.tokens = tokenize(src)
        self.i = 0

    def fail(self, what: str) -> ViewDefinitionError:
        tok = self.tokens[min(self.i, len(self.tokens) - 1)]
        found = tok.text or "end of expression"
        return ViewDefinitionError(f"FHIRPath {self.src!r}: {what} at {tok.pos} (found {found!r})")

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind is not Tok.EOF:  # never step past the end marker
            self.i += 1
        return tok

    def expect_op(self, text: str) -> None:
        tok = self.peek()
        if tok.kind is not Tok.OP or tok.text != text:
            raise self.fail(f"expected {text!r}")
        self.i += 1

    def operator_at(self, level: int) -> str | None:
        tok = self.peek()
        ops = _LEVELS[level]
        if tok.kind is Tok.OP and tok.text in ops:
            return tok.text
        if tok.kind is Tok.IDENT and not tok.quoted and tok.text in ops:
            return tok.text
        return None

    def parse(self) -> Node:
        node = self.expression(0)
        if self.peek().kind is not Tok.EOF:
            raise self.fail("unexpected token")
        return node

    def expression(self, level: int) -> Node:
        if level == len(_LEVELS):
            return self.unary()
        left = self.expression(level + 1)
        while (op := self.operator_at(level)) is not None:
            self.take()
            if op in ("is", "as"):
                left = TypeOp(op, left, self.type_specifier())
            else:
                left = Binary(op, left, self.expression(level + 1))
        return left

    def type_specifier(self) -> str:
        tok = self.take()
        if tok.kind is not Tok.IDENT:
            raise self.fail("expected a type name")
        name = tok.text
        while self.peek().kind is Tok.OP and self.peek().text == ".":
            self.take()
            nxt = self.take()
            if nxt.kind is not Tok.IDENT:
                raise self.fail("expected a type name")
            name = nxt.text  # FHIR.Quantity / System.String: the namespace is not needed
        return name

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind is Tok.OP and tok.text in ("+", "-"):
            self.take()
            return Unary(tok.text, self.unary())
        return self.postfix(self.term())

    def postfix(self, node: Node) -> Node:
        while True:
            tok = self.peek()
            if tok.kind is Tok.OP and tok.text == ".":
                self.take()
                name = self.take()
                if name.kind is not Tok.IDENT:
                    raise self.fail("expected a name after '.'")
                node = self.invocation(node, name)
            elif tok.kind is Tok.OP and tok.text == "[":
                self.take()
                index = self.expression(0)
                self.expect_op("]")
                node = Index(node, index)
            else:
                return node

    def invocation(self, target: Node | None, name: Token) -> Node:
        nxt = self.peek()
        if nxt.kind is Tok.OP and nxt.text == "(":
            self.take()
            args: list[Node] = []
            if not (self.peek().kind is Tok.OP and self.peek().text == ")"):
                args.append(self.expression(0))
                while self.peek().kind is Tok.OP and self.peek().text == ",":
                    self.take()
                    args.append(self.expression(0))
            self.expect_op(")")
            return Call(target, name.text, tuple(args))
        return Member(target, name.text)

    def term(self) -> Node:
        start = self.i
        tok = self.take()
        if tok.kind is Tok.STRING:
            return Literal((tok.text,), "string")
        if tok.kind is Tok.NUMBER:
            if self.peek().kind is Tok.STRING:
                raise self.fail("quantity literals are not supported")
            if "." in tok.text:
                return Literal((float(tok.text),), "decimal")
            return Literal((int(tok.text),), "integer")
        if tok.kind is Tok.DATETIME:
            kind = "time" if tok.text.startswith("T") else "dateTime" if "T" in tok.text else "date"
            return Literal((tok.text.removeprefix("T"),), kind)
        if tok.kind is Tok.EXTERNAL:
            return External(tok.text)
        if tok.kind is Tok.SPECIAL:
            return Special(tok.text)
        if tok.kind is Tok.OP and tok.text == "{}":
            return Literal((), "empty")
        if tok.kind is Tok.OP and tok.text == "(":
            inner = self.expression(0)
            self.expect_op(")")
            return inner
        if tok.kind is Tok.IDENT:
            if not tok.quoted and tok.text in ("true", "false"):
                return Literal((tok.text == "true",), "boolean")
            if not tok.quoted and tok.text in _WORD_OPS and self.peek().kind is not Tok.OP:
                self.i = start
                raise self.fail("operator without a left operand")
            return self.invocation(None, tok)
        self.i = start
        raise self.fail("expected an expression")


def parse(src: str) -> Node:
    """Parse a FHIRPath expression; raise ``ViewDefinitionError`` with the position if invalid."""
    if not isinstance(src, str) or not src.strip():
        raise ViewDefinitionError(f"FHIRPath expression must be a non-empty string, got {src!r}")
    return _Parser(src).parse()


def type_argument(node: Node, function: str) -> str:
    """The type named by a type-specifier argument: ``ofType(Quantity)``, ``(FHIR.Patient)``,
    or the quoted form ``getReferenceKey('Patient')``."""
    if isinstance(node, Member):
        return node.name  # FHIR.Quantity parses as Member(Member(FHIR), Quantity)
    if isinstance(node, Literal) and len(node.values) == 1 and isinstance(node.values[0], str):
        return node.values[0]
    raise ViewDefinitionError(f"{function}() expects a type name")
