"""A small OData ``$filter`` / ``$orderby`` engine for the list endpoints, as much of OData as MDE accepts.

Supported: ``eq``, ``ne``, ``gt``, ``ge``, ``lt``, ``le``, ``in (...)``, ``and``, ``or``, ``not``,
parentheses, string literals (``'it''s'``), numbers, ``true``/``false``/``null``, datetimes (quoted or
bare), and ``collection/any(t: t eq 'x')`` on list properties such as ``machineTags``. Property names match
case-insensitively; string comparisons ignore case. Anything else raises :class:`ODataError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_liveresponse.simulator.clock import parse_datetime

Entity = Mapping[str, Any]
Predicate = Callable[[Entity, dict[str, Any]], bool]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<datetime>\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<punct>[(),:])
      | (?P<name>[A-Za-z_][A-Za-z0-9_./]*)
    )""",
    re.VERBOSE,
)
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?$")


class ODataError(ValueError):
    """A ``$filter`` or ``$orderby`` the simulator (and MDE) cannot evaluate."""


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ODataError(f"Syntax error at position {position} in $filter '{text}'")
        kind = match.lastgroup or ""
        tokens.append(_Token(kind, match.group(kind)))
        position = match.end()
    return tokens


def _literal_value(token: _Token) -> Any:
    if token.kind == "string":
        return token.text[1:-1].replace("''", "'")
    if token.kind == "datetime":
        return token.text
    if token.kind == "number":
        return float(token.text) if "." in token.text else int(token.text)
    lowered = token.text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    raise ODataError(f"Expected a literal, found '{token.text}'")


def _lookup(entity: Entity, name: str) -> Any:
    lowered = name.lower()
    for key, value in entity.items():
        if key.lower() == lowered:
            return value
    return None


def _compare(left: Any, operator: str, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        if _DATETIME.match(left) and _DATETIME.match(right):
            left_value: Any = parse_datetime(left)
            right_value: Any = parse_datetime(right)
        else:
            left_value, right_value = left.lower(), right.lower()
    else:
        left_value, right_value = left, right
    if operator == "eq":
        return bool(left_value == right_value)
    if operator == "ne":
        return bool(left_value != right_value)
    if left_value is None or right_value is None:
        return False
    try:
        if operator == "gt":
            return bool(left_value > right_value)
        if operator == "ge":
            return bool(left_value >= right_value)
        if operator == "lt":
            return bool(left_value < right_value)
        return bool(left_value <= right_value)
    except TypeError:
        raise ODataError(f"Cannot compare {left!r} with {right!r} using '{operator}'") from None


class _Parser:
    def __init__(self, text: str, fields: Sequence[str]) -> None:
        self.tokens = _tokenize(text)
        self.position = 0
        self.fields = {name.lower(): name for name in fields}
        self.variables: set[str] = set()

    def peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def next(self) -> _Token:
        token = self.peek()
        if token is None:
            raise ODataError("Unexpected end of $filter")
        self.position += 1
        return token

    def expect(self, text: str) -> None:
        token = self.next()
        if token.text.lower() != text:
            raise ODataError(f"Expected '{text}', found '{token.text}'")

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "name" and token.text.lower() == word:
            self.position += 1
            return True
        return False

    def parse(self) -> Predicate:
        predicate = self.parse_or()
        if self.peek() is not None:
            raise ODataError(f"Unexpected '{self.peek().text}' in $filter")  # type: ignore[union-attr]
        return predicate

    def parse_or(self) -> Predicate:
        terms = [self.parse_and()]
        while self.keyword("or"):
            terms.append(self.parse_and())
        if len(terms) == 1:
            return terms[0]
        return lambda entity, scope: any(term(entity, scope) for term in terms)

    def parse_and(self) -> Predicate:
        terms = [self.parse_unary()]
        while self.keyword("and"):
            terms.append(self.parse_unary())
        if len(terms) == 1:
            return terms[0]
        return lambda entity, scope: all(term(entity, scope) for term in terms)

    def parse_unary(self) -> Predicate:
        if self.keyword("not"):
            inner = self.parse_unary()
            return lambda entity, scope: not inner(entity, scope)
        token = self.peek()
        if token is not None and token.text == "(":
            self.next()
            inner = self.parse_or()
            self.expect(")")
            return inner
        return self.parse_comparison()

    def property_name(self, token: _Token) -> str:
        if token.kind != "name":
            raise ODataError(f"Expected a property name, found '{token.text}'")
        name = self.fields.get(token.text.lower())
        if name is None:
            raise ODataError(f"Could not find a property named '{token.text}' on this entity, or it cannot be filtered")
        return name

    def parse_operand(self) -> Callable[[Entity, dict[str, Any]], Any]:
        token = self.next()
        if token.kind == "name" and token.text in self.variables:
            variable = token.text
            return lambda entity, scope: scope[variable]
        if token.kind == "name" and token.text.lower() not in ("true", "false", "null"):
            name = self.property_name(token)
            return lambda entity, scope: _lookup(entity, name)
        value = _literal_value(token)
        return lambda entity, scope: value

    def parse_comparison(self) -> Predicate:
        token = self.peek()
        if token is not None and token.kind == "name" and token.text.lower().endswith("/any"):
            return self.parse_any(token)
        left = self.parse_operand()
        operator = self.next().text.lower()
        if operator == "in":
            self.expect("(")
            values: list[Any] = [_literal_value(self.next())]
            while (separator := self.next()).text == ",":
                values.append(_literal_value(self.next()))
            if separator.text != ")":
                raise ODataError(f"Expected ')' to close 'in', found '{separator.text}'")
            return lambda entity, scope: any(_compare(left(entity, scope), "eq", value) for value in values)
        if operator not in _COMPARISONS:
            raise ODataError(f"Unsupported operator '{operator}'")
        right = self.parse_operand()
        return lambda entity, scope: _compare(left(entity, scope), operator, right(entity, scope))

    def parse_any(self, token: _Token) -> Predicate:
        self.next()
        collection = self.property_name(_Token("name", token.text[: -len("/any")]))
        self.expect("(")
        variable = self.next()
        if variable.kind != "name":
            raise ODataError("Expected a lambda variable in any()")
        self.expect(":")
        self.variables.add(variable.text)
        try:
            inner = self.parse_or()
        finally:
            self.variables.discard(variable.text)
        self.expect(")")
        name = variable.text

        def predicate(entity: Entity, scope: dict[str, Any]) -> bool:
            items = _lookup(entity, collection) or []
            return any(inner(entity, {**scope, name: item}) for item in items)

        return predicate


def compile_filter(text: str, fields: Sequence[str]) -> Predicate:
    """Compile ``$filter`` text over the given filterable ``fields`` into a predicate ``(entity, {}) -> bool``."""
    if not text.strip():
        return lambda entity, scope: True
    return _Parser(text, fields).parse()


def sort_key_for(orderby: str, fields: Sequence[str]) -> tuple[str, bool]:
    """Parse ``$orderby`` (one property, optional ``asc``/``desc``) to ``(property, descending)``."""
    parts = orderby.split()
    if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
        raise ODataError(f"Invalid $orderby '{orderby}'")
    lookup = {name.lower(): name for name in fields}
    name = lookup.get(parts[0].lower())
    if name is None:
        raise ODataError(f"Could not find a property named '{parts[0]}' to order by")
    return name, len(parts) == 2 and parts[1].lower() == "desc"
