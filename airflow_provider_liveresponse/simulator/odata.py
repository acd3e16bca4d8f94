"""A small OData ``$filter`` / ``$orderby`` engine for the list endpoints, as much of OData as MDE accepts.

Supported: ``eq``, ``ne``, ``gt``, ``ge``, ``lt``, ``le``, ``in (...)``, ``and``, ``or``, ``not``,
parentheses, string literals (``'it''s'``), numbers, ``true``/``false``/``null``, datetimes (quoted or
bare), and ``collection/any(t: t eq 'x')`` on list properties such as ``machineTags``. Property names match
case-insensitively; string comparisons ignore case. Anything else raises :class:`ODataError`.

Entities may be any mapping; a lazy view (:mod:`.views`) computes only the properties a filter reads, and may
hand a datetime as an :class:`Instant` (already parsed) instead of text. Comparisons with a constant string
(``eq``, ``ne``, ``in``) are prepared once per filter, so a filter costs about a microsecond per entity.
"""

from __future__ import annotations

import functools
import operator
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


class Instant(float):
    """A datetime property already parsed, in epoch seconds: compares with datetime text and with other instants."""

    __slots__ = ()

    @property
    def epoch(self) -> float:
        """The moment in epoch seconds."""
        return float(self)


_epoch = functools.lru_cache(maxsize=4096)(parse_datetime)
_MISSING = object()


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
    value = entity.get(name, _MISSING)
    if value is not _MISSING:
        return value
    lowered = name.lower()
    for key, value in entity.items():
        if key.lower() == lowered:
            return value
    return None


def _as_epoch(value: Any) -> Any:
    """An :class:`Instant` or datetime text as epoch seconds; anything else unchanged."""
    if isinstance(value, Instant):
        return value.epoch
    if isinstance(value, str) and _DATETIME.match(value):
        return _epoch(value)
    return value


def _compare(left: Any, operator: str, right: Any) -> bool:
    if isinstance(left, Instant) or isinstance(right, Instant):
        left_value: Any = _as_epoch(left)
        right_value: Any = _as_epoch(right)
    elif isinstance(left, str) and isinstance(right, str):
        if _DATETIME.match(left) and _DATETIME.match(right):
            left_value, right_value = _epoch(left), _epoch(right)
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


def _matcher(values: Sequence[Any]) -> Callable[[Any], bool]:
    """Whether a value equals any of ``values`` (constants), as :func:`_compare` with ``eq`` would say.

    Text that is not a datetime compares case-insensitively with text constants, so that case is one set lookup.
    """
    texts = {value.lower() for value in values if isinstance(value, str)}

    def matches(value: Any) -> bool:
        if isinstance(value, str) and not (value[4:5] == "-" and _DATETIME.match(value)):
            return value.lower() in texts
        return any(_compare(value, "eq", constant) for constant in values)

    return matches


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}


def _instant_comparison(left: Callable[[Entity, dict[str, Any]], Any], name: str, text: str) -> Predicate:
    """``left <name> <datetime text>``: parsed once; an :class:`Instant` property compares without parsing."""
    compare = _OPERATORS[name]
    moment = Instant(_epoch(text))

    def predicate(entity: Entity, scope: dict[str, Any]) -> bool:
        value = left(entity, scope)
        if isinstance(value, Instant):
            return bool(compare(value, moment))
        return _compare(value, name, text)

    return predicate


class _Parser:
    def __init__(self, text: str, fields: Sequence[str]) -> None:
        self.tokens = _tokenize(text)
        self.position = 0
        self.fields = {name.lower(): name for name in fields}
        self.variables: set[str] = set()
        #: The last comparison of each lambda variable with constants: (its predicate, the test of a value).
        self.item_tests: dict[str, tuple[Predicate, Callable[[Any], bool]]] = {}

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
        if len(terms) == 2:
            first, second = terms
            return lambda entity, scope: first(entity, scope) or second(entity, scope)
        return lambda entity, scope: any(term(entity, scope) for term in terms)

    def parse_and(self) -> Predicate:
        terms = [self.parse_unary()]
        while self.keyword("and"):
            terms.append(self.parse_unary())
        if len(terms) == 1:
            return terms[0]
        if len(terms) == 2:
            first, second = terms
            return lambda entity, scope: first(entity, scope) and second(entity, scope)
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
        subject = self.peek()
        left = self.parse_operand()
        operator = self.next().text.lower()
        matches: Callable[[Any], bool] | None = None
        if operator == "in":
            self.expect("(")
            values: list[Any] = [_literal_value(self.next())]
            while (separator := self.next()).text == ",":
                values.append(_literal_value(self.next()))
            if separator.text != ")":
                raise ODataError(f"Expected ')' to close 'in', found '{separator.text}'")
            matches = _matcher(values)
        elif operator not in _COMPARISONS:
            raise ODataError(f"Unsupported operator '{operator}'")
        else:
            constant = self.peek()
            right = self.parse_operand()
            literal = _literal_value(constant) if constant is not None and constant.kind != "name" else None
            if isinstance(literal, str) and _DATETIME.match(literal):
                return _instant_comparison(left, operator, literal)
            if operator not in ("eq", "ne") or constant is None or constant.kind != "string":
                return lambda entity, scope: _compare(left(entity, scope), operator, right(entity, scope))
            equals = _matcher([_literal_value(constant)])
            if operator == "ne":
                return lambda entity, scope: not equals(left(entity, scope))
            matches = equals
        test = matches

        def predicate(entity: Entity, scope: dict[str, Any]) -> bool:
            return test(left(entity, scope))

        if subject is not None and subject.text in self.variables:
            # ``t eq 'x'`` or ``t in (...)`` on the lambda variable: any() tests the items directly.
            self.item_tests[subject.text] = (predicate, test)
        return predicate

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
        simple = self.item_tests.pop(name, None)
        if simple is not None and simple[0] is inner:
            test = simple[1]
            return lambda entity, scope: any(map(test, _lookup(entity, collection) or ()))

        def predicate(entity: Entity, scope: dict[str, Any]) -> bool:
            items = _lookup(entity, collection) or []
            inner_scope = dict(scope)
            for item in items:
                inner_scope[name] = item
                if inner(entity, inner_scope):
                    return True
            return False

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
