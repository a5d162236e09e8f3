"""What a block of code reads from the database: each query, and the rows it fetched.

``RowsRead`` puts a counter between Django's cursor and the driver's for the queries run
inside it (``connection.execute_wrapper``): the queries are the real ones, on the real
database, and every row that comes back into Python is counted, whichever of the driver's
ways it is fetched by.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from django.db import connection


@dataclass
class Query:
    """One query run, and how many rows came back from it."""

    sql: str
    rows: int = 0


class _Counting:
    """The driver's cursor, counting the rows fetched from it into ``query``."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor
        self.query = Query("")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def __iter__(self) -> Iterator[Any]:
        for row in self._cursor:
            self.query.rows += 1
            yield row

    def fetchone(self) -> Any:
        row = self._cursor.fetchone()
        self.query.rows += row is not None
        return row

    def fetchmany(self, *args: Any, **kwargs: Any) -> list[Any]:
        rows: list[Any] = self._cursor.fetchmany(*args, **kwargs)
        self.query.rows += len(rows)
        return rows

    def fetchall(self) -> list[Any]:
        rows: list[Any] = self._cursor.fetchall()
        self.query.rows += len(rows)
        return rows


class RowsRead:
    """Within it, every query run on the default database and the rows each fetched."""

    def __init__(self) -> None:
        self.queries: list[Query] = []

    def __enter__(self) -> Self:
        self._wrapping = connection.execute_wrapper(self._execute)
        self._wrapping.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._wrapping.__exit__(kind, error, traceback)

    def _execute(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        wrapper = context["cursor"]
        if not isinstance(wrapper.cursor, _Counting):
            wrapper.cursor = _Counting(wrapper.cursor)
        wrapper.cursor.query = Query(sql)
        self.queries.append(wrapper.cursor.query)
        return execute(sql, params, many, context)

    @property
    def rows(self) -> int:
        """Rows fetched by every query."""
        return sum(query.rows for query in self.queries)

    @property
    def most(self) -> Query:
        """The query that fetched the most rows."""
        return max(self.queries, key=lambda query: query.rows)
