"""Rows that can no longer be read, and their repair: dates outside the years 1 to 9999.

PostgreSQL stores dates from 4713 BC to 294276 AD; Python's ``datetime`` (and so psycopg
and every page) reads only the years 1 to 9999. Imports before dates were converted to UTC
could store, from "0001-01-01T00:00:00+00:01", a moment of the year 0, and from
"9999-12-31T23:59:59-00:01" one of the year 10000: every query that read such a row failed
(the admin's message list for every staff member, the conversation's page, its exports).
``do_repair_dates`` finds them by SQL alone, without reading them into Python, and moves
each to the nearest moment that can be read.
"""

from dataclasses import dataclass

from django.apps import apps
from django.db import connection, models, transaction

# The first and last moments Python reads, in UTC.
_FIRST = "0001-01-01 00:00:00+00"
_LAST = "9999-12-31 23:59:59.999999+00"


@dataclass(frozen=True)
class Unreadable:
    """How many rows of one table have a date outside the years 1 to 9999 in one column."""

    table: str
    column: str
    rows: int


def do_repair_dates(*, apply: bool = False) -> list[Unreadable]:
    """Every date column of chatsite's tables with rows that cannot be read: counted, or
    with ``apply`` moved into the years 1 to 9999 (the first or the last moment read).
    Only PostgreSQL can hold such dates: elsewhere there is nothing to find."""
    if connection.vendor != "postgresql":
        return []
    found = []
    with transaction.atomic(), connection.cursor() as cursor:
        for table, column in _date_columns():
            where = f"{column} < %s OR {column} > %s"
            if apply:
                cursor.execute(
                    f"UPDATE {table} SET {column} = GREATEST(LEAST({column}, %s), %s) "
                    f"WHERE {where}",
                    [_LAST, _FIRST, _FIRST, _LAST],
                )
                rows = cursor.rowcount
            else:
                cursor.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", [_FIRST, _LAST])
                (rows,) = cursor.fetchone()
            if rows:
                found.append(Unreadable(table, column, rows))
    return found


def _date_columns() -> list[tuple[str, str]]:
    """(table, column), quoted, of every date and time column of chatsite's own models."""
    quote = connection.ops.quote_name
    return [
        (quote(str(model._meta.db_table)), quote(str(field.column)))
        for model in apps.get_app_config("streaming").get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, models.DateTimeField)
    ]
