"""The OData ``$filter`` subset the service documents: parsed, type-checked, evaluated per document."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from agent_runtime.testing.aisearch.schema import Document, SearchError, invalid

_ODATA_TOKEN = re.compile(
    r"(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)|(?P<punct>[(),:/])"
)
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_NUMBERS = {"Edm.Int32", "Edm.Int64", "Edm.Double"}
Node = tuple[Any, ...]


def _filter_error(text: str, detail: str) -> SearchError:
    return invalid(f"Invalid expression: {detail}\nParameter name: filter (in '{text}')")


class ODataFilter:
    """A filter parsed into a small tree, type-checked against the index's fields, evaluated per document.

    Nodes: ``("or"|"and", a, b)``, ``("not", a)``, ``("cmp", op, operand, operand)``, ``("in", operand,
    values)``, ``("any"|"all", field, body)``, ``("const", bool)``; operands ``("field", name)``, ``("var",)``
    (a lambda's range variable) and ``("lit", value, type)``.
    """

    def __init__(self, text: str, fields: Mapping[str, Document]) -> None:
        self._text, self._fields = text, fields
        self._tokens = self._tokenize(text)
        self._at = 0
        self._var: tuple[str, str] | None = None  # the range variable's name and element type
        self.tree = self._or()
        if self._at < len(self._tokens):
            raise self._syntax()

    def matches(self, document: Document) -> bool:
        return bool(_evaluate(self.tree, document, None))

    def _tokenize(self, text: str) -> list[tuple[str, str, int]]:
        tokens, at = [], 0
        while at < len(text):
            if text[at].isspace():
                at += 1
                continue
            found = _ODATA_TOKEN.match(text, at)
            if found is None or found.lastgroup is None:
                raise _filter_error(text, f"Syntax error at position {at}.")
            tokens.append((found.lastgroup, found.group(), at))
            at = found.end()
        return tokens

    def _syntax(self) -> SearchError:
        where = self._tokens[self._at][2] if self._at < len(self._tokens) else len(self._text)
        return _filter_error(self._text, f"Syntax error at position {where}.")

    def _peek(self, offset: int = 0) -> tuple[str, str, int] | None:
        at = self._at + offset
        return self._tokens[at] if at < len(self._tokens) else None

    def _accept(self, value: str) -> bool:
        token = self._peek()
        if token is not None and token[0] in ("name", "punct") and token[1] == value:
            self._at += 1
            return True
        return False

    def _expect(self, value: str) -> None:
        if not self._accept(value):
            raise self._syntax()

    def _or(self) -> Node:
        node = self._and()
        while self._accept("or"):
            node = ("or", node, self._and())
        return node

    def _and(self) -> Node:
        node = self._not()
        while self._accept("and"):
            node = ("and", node, self._not())
        return node

    def _not(self) -> Node:
        return ("not", self._not()) if self._accept("not") else self._primary()

    def _primary(self) -> Node:
        if self._accept("("):
            node = self._or()
            self._expect(")")
            return node
        token = self._peek()
        if token is None:
            raise self._syntax()
        if token[1] == "search.in":
            return self._search_in()
        following = self._peek(1)
        if token[0] == "name" and following is not None and following[1] == "/":
            return self._lambda()
        left = self._operand()
        token = self._peek()
        if token is None or token[1] not in _COMPARISONS:
            if left[0] == "lit" and left[2] == "Edm.Boolean":
                return ("const", left[1])
            if left[0] == "field" and self._fields[left[1]]["type"] == "Edm.Boolean":
                return ("cmp", "eq", left, ("lit", True, "Edm.Boolean"))
            raise self._syntax()
        self._at += 1
        return self._comparison(token[1], left, self._operand())

    def _operand(self) -> Node:
        token = self._peek()
        if token is None:
            raise self._syntax()
        kind, value, _ = token
        self._at += 1
        if kind == "string":
            return ("lit", value[1:-1].replace("''", "'"), "Edm.String")
        if kind == "number":
            number = float(value) if any(c in value for c in ".eE") else int(value)
            return ("lit", number, "Edm.Double" if isinstance(number, float) else "Edm.Int64")
        if kind == "name" and value in ("true", "false"):
            return ("lit", value == "true", "Edm.Boolean")
        if kind == "name" and value == "null":
            return ("lit", None, "null")
        if kind == "name" and "." in value:
            raise _filter_error(
                self._text, f"The function '{value}' is not supported by the local AI Search server."
            )
        if kind == "name" and self._var is not None and value == self._var[0]:
            return ("var",)
        if kind == "name":
            return ("field", self._filterable(value)["name"])
        self._at -= 1
        raise self._syntax()

    def _filterable(self, name: str) -> Document:
        field_ = self._fields.get(name)
        if field_ is None:
            raise _filter_error(
                self._text, f"Could not find a property named '{name}' on type 'search.document'."
            )
        if not field_["filterable"]:
            detail = f"The field '{name}' is not filterable: only filterable fields can be used in filters."
            raise _filter_error(self._text, detail)
        return field_

    def _type(self, operand: Node) -> str:
        if operand[0] == "lit":
            return str(operand[2])
        if operand[0] == "var":
            return self._var[1]  # type: ignore[index]
        type_ = self._fields[operand[1]]["type"]
        if type_.startswith("Collection("):
            raise _filter_error(self._text, f"The collection field '{operand[1]}' can only be filtered with "
                                            "'any' or 'all'.")  # fmt: skip
        return str(type_)

    def _comparison(self, op: str, left: Node, right: Node) -> Node:
        if (left[0] == "lit") == (right[0] == "lit"):
            raise _filter_error(
                self._text, "A comparison needs one field (or range variable) and one constant."
            )
        types = {self._type(left), self._type(right)} - {"null"}
        if "null" in {self._type(left), self._type(right)} and op not in ("eq", "ne"):
            raise _filter_error(self._text, f"null cannot be compared with '{op}'.")
        if len(types) > 1 and not types <= _NUMBERS:
            raise _filter_error(self._text, f"Cannot compare values of types {sorted(types)}.")
        if types == {"Edm.Boolean"} and op not in ("eq", "ne"):
            raise _filter_error(self._text, f"Booleans cannot be compared with '{op}'.")
        return ("cmp", op, left, right)

    def _search_in(self) -> Node:
        self._at += 1
        self._expect("(")
        subject = self._operand()
        if subject[0] == "lit" or self._type(subject) != "Edm.String":
            raise _filter_error(self._text, "search.in applies to a string field or range variable.")
        self._expect(",")
        values, delimiters = self._string(), " ,"
        if self._accept(","):
            delimiters = self._string()
        self._expect(")")
        if not delimiters:
            raise _filter_error(self._text, "search.in needs at least one delimiter.")
        split = re.split("[" + re.escape(delimiters) + "]", values)
        return ("in", subject, frozenset(v for v in split if v))

    def _string(self) -> str:
        operand = self._operand()
        if operand[0] != "lit" or operand[2] != "Edm.String":
            raise self._syntax()
        return str(operand[1])

    def _lambda(self) -> Node:
        name = self._peek()[1]  # type: ignore[index]
        field_ = self._filterable(name)
        self._at += 2
        kind = self._peek()
        if kind is None or kind[1] not in ("any", "all"):
            raise self._syntax()
        self._at += 1
        if not field_["type"].startswith("Collection("):
            raise _filter_error(self._text, f"'{kind[1]}' applies to collection fields; '{name}' is not one.")
        if self._var is not None:
            raise _filter_error(self._text, "Lambda expressions cannot be nested on string collections.")
        self._expect("(")
        if kind[1] == "any" and self._accept(")"):
            return ("any", name, None)
        variable = self._peek()
        if variable is None or variable[0] != "name":
            raise self._syntax()
        self._at += 1
        self._expect(":")
        self._var = (variable[1], field_["type"][len("Collection(") : -1])
        body = self._or()
        self._var = None
        self._expect(")")
        self._check_lambda(kind[1], body)
        return (kind[1], name, body)

    def _check_lambda(self, kind: str, body: Node) -> None:
        """The service's rule for string collections: ``any`` bodies are ``eq``/``search.in`` joined by
        ``or``; ``all`` bodies are ``ne``/``not search.in`` joined by ``and``; each on the range variable."""
        join, allowed = ("or", ("eq", "in")) if kind == "any" else ("and", ("ne", "not in"))
        if body[0] == join:
            self._check_lambda(kind, body[1])
            self._check_lambda(kind, body[2])
            return
        if body[0] == "cmp":
            shape, subject = body[1], body[2] if body[2][0] == "var" else body[3]
        elif body[0] == "in":
            shape, subject = "in", body[1]
        elif body[0] == "not" and body[1][0] == "in":
            shape, subject = "not in", body[1][1]
        else:
            shape, subject = None, None
        if shape not in allowed or subject != ("var",):
            raise _filter_error(
                self._text,
                f"In '{kind}' on a string collection only {' and '.join(allowed)} on the range variable, "
                f"combined with '{join}', are allowed.",
            )


def _evaluate(node: Node, document: Document, element: Any) -> Any:
    kind = node[0]
    if kind == "or":
        return _evaluate(node[1], document, element) or _evaluate(node[2], document, element)
    if kind == "and":
        return _evaluate(node[1], document, element) and _evaluate(node[2], document, element)
    if kind == "not":
        return not _evaluate(node[1], document, element)
    if kind == "const":
        return node[1]
    if kind == "in":
        return _value(node[1], document, element) in node[2]
    if kind in ("any", "all"):
        values = document.get(node[1]) or []
        if node[2] is None:
            return bool(values)
        test = any if kind == "any" else all
        return test(_evaluate(node[2], document, value) for value in values)
    left, right = _value(node[2], document, element), _value(node[3], document, element)
    if node[1] == "eq":
        return left == right
    if node[1] == "ne":
        return left != right
    if left is None or right is None:
        return False
    return {"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[node[1]]


def _value(operand: Node, document: Document, element: Any) -> Any:
    if operand[0] == "lit":
        return operand[1]
    return element if operand[0] == "var" else document.get(operand[1])
