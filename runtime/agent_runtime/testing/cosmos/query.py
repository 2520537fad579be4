"""The query subset the local server answers: a small parser and evaluator, refusing anything else."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent_runtime.testing.cosmos.base import CosmosError, Document, bad_request

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<param>@\w+)
      | (?P<name>[A-Za-z_]\w*)
      | (?P<symbol>[.,=*\[\]])
    )""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_LITERALS = {"TRUE": True, "FALSE": False, "NULL": None}
MISSING = object()
"""An undefined value: a property path that leads nowhere (SQL ``undefined``, never equal to anything)."""


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int

    def is_keyword(self, word: str) -> bool:
        return self.kind == "name" and self.text.upper() == word


@dataclass(frozen=True)
class PropertyPath:
    """``c.a.b`` or ``c["a"][0]``: the keys below the query's alias."""

    keys: tuple[str | int, ...]

    def value_in(self, document: Document) -> Any:
        value: Any = document
        for key in self.keys:
            found = (
                key in value
                if isinstance(key, str) and isinstance(value, dict)
                else isinstance(key, int) and isinstance(value, list) and 0 <= key < len(value)
            )
            if not found:
                return MISSING
            value = value[key]
        return value


@dataclass(frozen=True)
class Constant:
    """A literal or a bound ``@parameter``."""

    value: Any

    def value_in(self, document: Document) -> Any:
        return self.value


Operand = PropertyPath | Constant


@dataclass(frozen=True)
class Query:
    """A parsed query of the supported subset; ``fields`` is None for ``SELECT *``."""

    top: int | None
    fields: tuple[PropertyPath, ...] | None
    equalities: tuple[tuple[Operand, Operand], ...]
    order_by: PropertyPath | None
    descending: bool

    def run(self, documents: Sequence[Document]) -> list[Document]:
        rows = [document for document in documents if self._matches(document)]
        if self.order_by is not None:
            path = self.order_by
            rows.sort(key=lambda document: _sort_key(path.value_in(document)), reverse=self.descending)
        if self.top is not None:
            rows = rows[: self.top]
        return [self._project(row) for row in rows]

    def _matches(self, document: Document) -> bool:
        return all(
            _sql_equal(left.value_in(document), right.value_in(document)) for left, right in self.equalities
        )

    def _project(self, document: Document) -> Document:
        if self.fields is None:
            return document
        values = ((str(path.keys[-1]), path.value_in(document)) for path in self.fields)
        return {name: value for name, value in values if value is not MISSING}


def _kind(value: Any) -> int:
    """The SQL type order: undefined < null < boolean < number < string < array < object."""
    if value is MISSING:
        return 0
    if value is None:
        return 1
    if isinstance(value, bool):
        return 2
    if isinstance(value, int | float):
        return 3
    if isinstance(value, str):
        return 4
    return 5 if isinstance(value, list) else 6


def _sort_key(value: Any) -> tuple[int, Any]:
    """ORDER BY's key: by type first, then by value; arrays and objects tie among themselves."""
    kind = _kind(value)
    return (kind, value if kind in (2, 3, 4) else 0)


def _sql_equal(left: Any, right: Any) -> bool:
    """SQL ``=``: undefined equals nothing, values of different types are unequal (``true`` is not ``1``)."""
    if left is MISSING or right is MISSING or _kind(left) != _kind(right):
        return False
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_sql_equal, left, right))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_sql_equal(left[key], right[key]) for key in left)
    return bool(left == right)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while text[position:].strip():
        match = _TOKEN.match(text, position)
        if match is None or match.lastgroup is None:
            start = len(text) - len(text[position:].lstrip())
            raise bad_request(f"unsupported query syntax at position {start}: {text[start : start + 20]!r}")
        tokens.append(_Token(match.lastgroup, match.group(match.lastgroup), match.start(match.lastgroup)))
        position = match.end()
    return tokens


def _unquote_string(literal: str) -> str:
    def replace(match: re.Match[str]) -> str:
        escape = match.group(1)
        return chr(int(escape[1:], 16)) if escape[0] == "u" else _ESCAPES.get(escape, escape)

    return _ESCAPE.sub(replace, literal[1:-1])


class _QueryParser:
    """Recursive descent over the supported grammar; whatever it does not consume is refused, by name."""

    def __init__(self, text: str, parameters: Mapping[str, Any]) -> None:
        self._tokens = _tokenize(text)
        self._position = 0
        self._parameters = parameters
        self._alias = ""

    def parse(self) -> Query:
        self._expect_keyword("SELECT")
        top = self._top()
        fields = self._projection()
        self._expect_keyword("FROM")
        self._alias = self._expect("name", "a collection alias after FROM").text
        for root, _ in fields or ():
            self._check_root(root)  # only now is the alias known
        equalities = self._where()
        order_by, descending = self._order_by()
        if (extra := self._peek()) is not None:
            raise bad_request(f"unsupported query clause at position {extra.position}: {extra.text!r}")
        paths = None if fields is None else tuple(path for _, path in fields)
        return Query(top, paths, tuple(equalities), order_by, descending)

    def _peek(self) -> _Token | None:
        return self._tokens[self._position] if self._position < len(self._tokens) else None

    def _next(self, expected: str) -> _Token:
        token = self._peek()
        if token is None:
            raise bad_request(f"the query ends where {expected} was expected")
        self._position += 1
        return token

    def _expect(self, kind: str, expected: str) -> _Token:
        token = self._next(expected)
        if token.kind != kind:
            raise bad_request(f"expected {expected} at position {token.position}, found {token.text!r}")
        return token

    def _expect_keyword(self, word: str) -> None:
        token = self._next(word)
        if not token.is_keyword(word):
            raise bad_request(f"expected {word} at position {token.position}, found {token.text!r}")

    def _accept(self, kind: str, text: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == kind and token.text.upper() == text:
            self._position += 1
            return True
        return False

    def _top(self) -> int | None:
        if not self._accept("name", "TOP"):
            return None
        token = self._next("a number or @parameter after TOP")
        value = self._constant(token).value
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise bad_request(f"TOP needs a non-negative integer, got {value!r}")
        return value

    def _projection(self) -> list[tuple[_Token, PropertyPath]] | None:
        """``*`` (None) or property paths, each with its root token: FROM names the alias only later."""
        if self._accept("symbol", "*"):
            return None
        fields = [self._field()]
        while self._accept("symbol", ","):
            fields.append(self._field())
        if (token := self._peek()) is not None and not token.is_keyword("FROM"):
            raise bad_request(f"unsupported projection at position {token.position}: {token.text!r}")
        names = [path.keys[-1] for _, path in fields]
        if len(set(names)) != len(names):
            raise bad_request("projected properties must have distinct names (aliases are not supported)")
        return fields

    def _field(self) -> tuple[_Token, PropertyPath]:
        root = self._next("a property path")
        path = self._keys() if root.kind == "name" else PropertyPath(())
        if not path.keys or not isinstance(path.keys[-1], str):
            raise bad_request(
                f"unsupported projection at position {root.position}: {root.text!r} "
                "(only property paths ending in a name, such as c.name)"
            )
        return root, path

    def _where(self) -> list[tuple[Operand, Operand]]:
        if not self._accept("name", "WHERE"):
            return []
        equalities = [self._equality()]
        while self._accept("name", "AND"):
            equalities.append(self._equality())
        return equalities

    def _equality(self) -> tuple[Operand, Operand]:
        left = self._operand()
        token = self._next("=")
        if token.text != "=":
            raise bad_request(f"only '=' comparisons are supported, found {token.text!r} at {token.position}")
        return left, self._operand()

    def _order_by(self) -> tuple[PropertyPath | None, bool]:
        if not self._accept("name", "ORDER"):
            return None, False
        self._expect_keyword("BY")
        self._check_root(self._next("a property path after ORDER BY"))
        path = self._keys()
        descending = self._accept("name", "DESC")
        if not descending:
            self._accept("name", "ASC")
        if self._accept("symbol", ","):
            raise bad_request("ORDER BY supports one property only")
        return path, descending

    def _operand(self) -> Operand:
        token = self._next("a property path, @parameter or literal")
        if token.kind == "name" and token.text == self._alias:
            return self._keys()
        return self._constant(token)

    def _constant(self, token: _Token) -> Constant:
        if token.kind == "param":
            if token.text not in self._parameters:
                raise bad_request(f"the query uses {token.text} but no such parameter was given")
            return Constant(self._parameters[token.text])
        if token.kind == "number":
            return Constant(json.loads(token.text))
        if token.kind == "string":
            return Constant(_unquote_string(token.text))
        if token.kind == "name" and token.text.upper() in _LITERALS:
            return Constant(_LITERALS[token.text.upper()])
        raise bad_request(f"unsupported expression at position {token.position}: {token.text!r}")

    def _check_root(self, root: _Token) -> None:
        if root.kind != "name" or root.text != self._alias:
            raise bad_request(
                f"unsupported expression at position {root.position}: {root.text!r} "
                f"(property paths start with the alias {self._alias!r})"
            )

    def _keys(self) -> PropertyPath:
        """The ``.name``, ``["name"]`` and ``[0]`` steps after a path's root."""
        keys: list[str | int] = []
        while True:
            if self._accept("symbol", "."):
                keys.append(self._expect("name", "a property name after '.'").text)
            elif self._accept("symbol", "["):
                keys.append(self._index())
            else:
                return PropertyPath(tuple(keys))

    def _index(self) -> str | int:
        token = self._next("a property name or index in [...]")
        key: str | int
        if token.kind == "string":
            key = _unquote_string(token.text)
        elif token.kind == "number" and token.text.isdigit():
            key = int(token.text)
        else:
            raise bad_request(f"expected a quoted name or an index at position {token.position}")
        self._expect("symbol", "']'")
        return key


QUERY_SUBSET = (
    "SELECT [TOP n] * | c.a[, c.b.c, c['d'], ...] FROM c [WHERE x = y [AND ...]] [ORDER BY c.x [ASC|DESC]]"
    ", where x and y are property paths, @parameters or literals"
)


def parse_query(text: str, parameters: Sequence[Mapping[str, Any]] = ()) -> Query:
    """Parse ``text`` with its ``[{"name": "@p", "value": ...}]`` parameters, or raise a 400 CosmosError
    that names the offending part and the supported subset."""
    bound = {str(parameter.get("name")): parameter.get("value") for parameter in parameters}
    try:
        return _QueryParser(text, bound).parse()
    except CosmosError as error:
        raise bad_request(f"{error.message}. The local server supports only: {QUERY_SUBSET}") from None
