"""FHIRPath tokenizer (the lexical grammar of FHIRPath N1, http://hl7.org/fhirpath/#grammar)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from adapters.sof.errors import ViewDefinitionError


class Tok(StrEnum):
    IDENT = "identifier"
    STRING = "string"
    NUMBER = "number"
    DATETIME = "datetime"  # @2020-01-01T10:00, @2020, @T10:00
    EXTERNAL = "external"  # %name, %`name`, %'name'
    SPECIAL = "special"  # $this, $index, $total
    OP = "operator"
    EOF = "end"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Tok
    text: str
    pos: int
    quoted: bool = False  # a `delimited` identifier is never a keyword


_ESCAPES = {"'": "'", '"': '"', "`": "`", "/": "/", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPES["\\"] = "\\"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
_DATETIME = re.compile(
    r"@(T[0-9]{2}(:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?"
    r"|[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?"
    r"(T([0-9]{2}(:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?)"
)
_OPERATORS: tuple[str, ...] = ("<=", ">=", "!=", "!~", "{}", ".", "[", "]", "(", ")", ",")
_OPERATORS += ("+", "-", "*", "/", "&", "|", "=", "~", "<", ">")


def _read_quoted(src: str, start: int, quote: str) -> tuple[str, int]:
    """Read a '...' or `...` literal starting at the opening quote; return (value, end)."""
    out: list[str] = []
    i = start + 1
    while i < len(src):
        ch = src[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\":
            if i + 1 >= len(src):
                break
            nxt = src[i + 1]
            if nxt == "u":
                hexdigits = src[i + 2 : i + 6]
                if len(hexdigits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in hexdigits):
                    raise ViewDefinitionError(f"bad unicode escape at {i} in FHIRPath {src!r}")
                out.append(chr(int(hexdigits, 16)))
                i += 6
                continue
            if nxt not in _ESCAPES:
                raise ViewDefinitionError(f"bad escape \\{nxt} at {i} in FHIRPath {src!r}")
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ViewDefinitionError(f"unterminated {quote} literal at {start} in FHIRPath {src!r}")


def tokenize(src: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    n = len(src)
    while i < n:
        ch = src[i]
        if ch.isspace():
            i += 1
        elif src.startswith("//", i):
            end = src.find("\n", i)
            i = n if end < 0 else end + 1
        elif src.startswith("/*", i):
            end = src.find("*/", i + 2)
            if end < 0:
                raise ViewDefinitionError(f"unterminated comment in FHIRPath {src!r}")
            i = end + 2
        elif ch == "'":
            text, end = _read_quoted(src, i, "'")
            tokens.append(Token(Tok.STRING, text, i))
            i = end
        elif ch == "`":
            text, end = _read_quoted(src, i, "`")
            tokens.append(Token(Tok.IDENT, text, i, quoted=True))
            i = end
        elif ch == "%":
            if i + 1 < n and src[i + 1] in "`'":
                text, end = _read_quoted(src, i + 1, src[i + 1])
            else:
                m = _IDENT.match(src, i + 1)
                if m is None:
                    raise ViewDefinitionError(f"bad %variable at {i} in FHIRPath {src!r}")
                text, end = m.group(), m.end()
            tokens.append(Token(Tok.EXTERNAL, text, i))
            i = end
        elif ch == "$":
            m = _IDENT.match(src, i + 1)
            if m is None or m.group() not in ("this", "index", "total"):
                raise ViewDefinitionError(f"bad $variable at {i} in FHIRPath {src!r}")
            tokens.append(Token(Tok.SPECIAL, m.group(), i))
            i = m.end()
        elif ch == "@":
            m = _DATETIME.match(src, i)
            if m is None:
                raise ViewDefinitionError(f"bad date/time literal at {i} in FHIRPath {src!r}")
            tokens.append(Token(Tok.DATETIME, m.group()[1:], i))
            i = m.end()
        elif ch.isdigit():
            m = _NUMBER.match(src, i)
            assert m is not None
            tokens.append(Token(Tok.NUMBER, m.group(), i))
            i = m.end()
        elif ch.isalpha() or ch == "_":
            m = _IDENT.match(src, i)
            assert m is not None
            tokens.append(Token(Tok.IDENT, m.group(), i))
            i = m.end()
        else:
            for op in _OPERATORS:
                if src.startswith(op, i):
                    tokens.append(Token(Tok.OP, op, i))
                    i += len(op)
                    break
            else:
                raise ViewDefinitionError(f"unexpected {ch!r} at {i} in FHIRPath {src!r}")
    tokens.append(Token(Tok.EOF, "", n))
    return tokens
