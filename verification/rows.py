"""The hot path's reads and writes, with their SQL built once per process.

Building a query is most of what an ORM query costs: on SQLite a select of a verification with
its sender account takes about 0.7 ms of CPU to build and about 0.02 ms to run. The steps of a
verification run the same handful of statements over and over, so these helpers have Django
build each one once (the ORM's compiler for reads; the model's fields for writes) and then run
the SQL with new parameters, converting values with the fields' own database conversions. Every
value still goes through the field that owns it, so encryption, time zones and JSON behave
exactly as with the ORM.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.db import connections
from django.db.models import Field, Model, QuerySet

M = TypeVar("M", bound=Model)


def _stand_in(field: Any, index: int) -> Any:
    """A value of ``field``'s type that no real parameter takes, found again in built SQL."""
    internal = field.get_internal_type()
    if internal == "UUIDField":
        return uuid.UUID(f"5e9f1c1e-0000-4000-8000-{index:012d}")
    if internal == "DateTimeField":
        return datetime(1901, 1, 1, 0, 0, index, tzinfo=UTC)
    if internal in {"IntegerField", "BigIntegerField", "AutoField", "BigAutoField"}:
        return -(7_000_000_000 + index)
    return f"\x00stand-in-{index}\x00"


class Read:
    """A ``values_list`` queryset built once per database, run with new parameter values.

    ``build(*params)`` makes the queryset from stand-in parameters; each parameter must reach
    the SQL unchanged except for its field's database conversion (an ``=`` lookup).
    """

    def __init__(self, build: Callable[..., QuerySet[Any]], fields: Sequence[Any]) -> None:
        self._build = build
        # The field each parameter is compared with, for its conversion.
        self._fields = list(fields)
        self._built: dict[str, tuple[str, list[int | None], list[Any], Any]] = {}
        self._lock = threading.Lock()

    def _prepare(self, alias: str) -> tuple[str, list[int | None], list[Any], Any]:
        connection = connections[alias]
        stand_ins = [_stand_in(field, index) for index, field in enumerate(self._fields)]
        adapted = [
            field.get_db_prep_value(value, connection, prepared=False)
            for field, value in zip(self._fields, stand_ins, strict=True)
        ]
        queryset = self._build(*stand_ins)
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        positions = [adapted.index(p) if p in adapted else None for p in params]
        fixed = [
            None if position is not None else p
            for p, position in zip(params, positions, strict=True)
        ]
        converters = compiler.get_converters([column[0] for column in compiler.select])
        return sql, positions, fixed, (compiler, converters)

    def rows(self, *values: Any, alias: str = "default") -> list[tuple[Any, ...]]:
        built = self._built.get(alias)
        if built is None:
            with self._lock:
                built = self._built.get(alias) or self._prepare(alias)
                self._built[alias] = built
        sql, positions, fixed, (compiler, converters) = built
        connection = connections[alias]
        adapted = [
            field.get_db_prep_value(value, connection, prepared=False)
            for field, value in zip(self._fields, values, strict=True)
        ]
        params = [
            adapted[position] if position is not None else value
            for position, value in zip(positions, fixed, strict=True)
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if converters:
            rows = list(compiler.apply_converters(rows, converters))
        return [tuple(row) for row in rows]


_insert_sql: dict[tuple[str, type[Model]], tuple[str, list[Field[Any, Any]]]] = {}
_update_sql: dict[tuple[str, type[Model], tuple[str, ...]], tuple[str, list[Field[Any, Any]]]] = {}


def _column(field: Field[Any, Any]) -> str:
    """The column of a concrete field (only fields without one, such as m2m, have ``None``)."""
    if field.column is None:
        raise TypeError(f"{field!r} has no column")
    return field.column


def _concrete_field(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.get_field(name)
    if not isinstance(field, Field):
        raise TypeError(f"{model.__name__}.{name} is a reverse relation, not a column")
    return field


def insert(instance: M, *, alias: str = "default") -> M:
    """INSERT ``instance`` (a model whose primary key is set, or made by its default)."""
    model = type(instance)
    key = (alias, model)
    connection = connections[alias]
    if key not in _insert_sql:
        fields = [field for field in model._meta.concrete_fields if not field.auto_created]
        columns = ", ".join(connection.ops.quote_name(_column(field)) for field in fields)
        marks = ", ".join(["%s"] * len(fields))
        table = connection.ops.quote_name(model._meta.db_table)
        _insert_sql[key] = (f"INSERT INTO {table} ({columns}) VALUES ({marks})", fields)
    sql, fields = _insert_sql[key]
    values = [
        field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields
    ]
    with connection.cursor() as cursor:
        # An auto-increment key is not read back: the hot path never refers to those rows.
        cursor.execute(sql, values)
    instance._state.adding = False
    instance._state.db = alias
    return instance


def update(instance: Model, fields: Sequence[str], *, alias: str = "default") -> None:
    """UPDATE the named fields of ``instance`` (and its ``auto_now`` fields) by primary key."""
    model = type(instance)
    names = tuple(fields) + tuple(
        field.name
        for field in model._meta.concrete_fields
        if getattr(field, "auto_now", False) and field.name not in fields
    )
    key = (alias, model, names)
    connection = connections[alias]
    if key not in _update_sql:
        chosen = [_concrete_field(model, name) for name in names]
        assignments = ", ".join(f"{connection.ops.quote_name(_column(f))} = %s" for f in chosen)
        table = connection.ops.quote_name(model._meta.db_table)
        pk = connection.ops.quote_name(_column(model._meta.pk))
        _update_sql[key] = (f"UPDATE {table} SET {assignments} WHERE {pk} = %s", chosen)
    sql, chosen = _update_sql[key]
    values = [
        field.get_db_prep_save(field.pre_save(instance, False), connection) for field in chosen
    ]
    values.append(model._meta.pk.get_db_prep_value(instance.pk, connection, prepared=False))
    with connection.cursor() as cursor:
        cursor.execute(sql, values)


def instance(
    model: type[M], attnames: Sequence[str], values: Sequence[Any], alias: str = "default"
) -> M:
    """A model instance from a row (fields not named are deferred)."""
    return model.from_db(alias, list(attnames), list(values))
