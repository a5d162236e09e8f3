"""The kinds of environment variable chatsite reads (chatsite/environment.py is the table of
them): how each is read from its text, what its README row says, and the error for a value
it cannot be."""

import os
import re
from abc import ABC, abstractmethod
from copy import copy
from dataclasses import KW_ONLY, dataclass
from typing import Generic, TypeVar

from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")


@dataclass(frozen=True)
class Variable(ABC, Generic[T]):
    """One environment variable: how it is read, and what README.md says of it."""

    #: Its name in the environment.
    name: str
    #: Its value when unset; None: settings derives it from other settings, as ``derived`` says.
    default: T | None
    #: What it sets, in a line (README.md says more).
    meaning: str
    _: KW_ONLY
    #: A derived default in README's words, e.g. "`DB_THREADS + 4`".
    derived: str = ""
    #: README's words on a plain default, shown after it in parentheses, e.g. "10 MiB".
    note: str = ""

    def __post_init__(self) -> None:
        if (self.default is None) == (not self.derived):
            raise TypeError(f"{self.name}: declare a default, or say in words how it is derived.")

    @abstractmethod
    def parse(self, raw: str) -> T:
        """The value ``raw`` sets, or ImproperlyConfigured saying what it must be."""

    def written(self, value: T) -> str:
        """``value`` as one would set it in the environment."""
        return str(value)

    def raw(self) -> str:
        """The variable's text in the environment, without surrounding spaces ("" if unset)."""
        return os.environ.get(self.name, "").strip()

    def is_set(self) -> bool:
        """Whether the environment gives the variable a value."""
        return bool(self.raw())

    def read(self, default: T | None = None) -> T:
        """The value set; unset, the declared default, or ``default`` when settings derives it."""
        raw = self.raw()
        if raw:
            return self.parse(raw)
        if self.default is None:
            if default is None:
                raise TypeError(f"Settings must derive {self.name}'s default and pass it.")
            return default
        if default is not None:
            raise TypeError(f"{self.name} declares its default: settings must not pass one.")
        # A copy: a list a setting holds may be changed in place, the table's must not.
        return copy(self.default)

    def readme_default(self) -> str:
        """The default as README.md's configuration table shows it."""
        if self.default is None:
            return self.derived
        written = self.written(self.default)
        shown = f"`{written}`" if written else "empty"
        return f"{shown} ({self.note})" if self.note else shown

    def refused(self, raw: str, what: str) -> ImproperlyConfigured:
        """The error for a value ``raw`` that is not ``what`` the variable must be."""
        return ImproperlyConfigured(f"{self.name} must be {what}, not {raw!r}.")


class Flag(Variable[bool]):
    """Yes or no: true, yes, on, 1 or false, no, off, 0, in any case."""

    def parse(self, raw: str) -> bool:
        word = raw.lower()
        if word in {"1", "true", "yes", "on"}:
            return True
        if word in {"0", "false", "no", "off"}:
            return False
        raise self.refused(raw, "true or false")

    def written(self, value: bool) -> str:
        return "true" if value else "false"


@dataclass(frozen=True, kw_only=True)
class Whole(Variable[int]):
    """A whole number, at least ``minimum`` (and at most ``maximum``, if any)."""

    minimum: int = 1
    maximum: int | None = None

    def parse(self, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise self.refused(raw, "a whole number") from None
        if value < self.minimum:
            raise self.refused(raw, f"at least {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise self.refused(raw, f"at most {self.maximum}")
        return value


class Number(Variable[float]):
    """A number greater than 0: seconds, minutes, a rate."""

    def parse(self, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise self.refused(raw, "a number") from None
        if not value > 0:  # written so, NaN is refused too
            raise self.refused(raw, "greater than 0")
        return value

    def written(self, value: float) -> str:
        return str(int(value)) if value.is_integer() else str(value)


class Items(Variable[list[str]]):
    """A comma-separated list; spaces around each item and empty items are dropped."""

    def parse(self, raw: str) -> list[str]:
        return [item.strip() for item in raw.split(",") if item.strip()]

    def written(self, value: list[str]) -> str:
        return ",".join(value)


@dataclass(frozen=True, kw_only=True)
class Text(Variable[str]):
    """A string, matching ``pattern`` (described by ``shape``) if there is one."""

    pattern: str = ""
    shape: str = ""

    def parse(self, raw: str) -> str:
        if self.pattern and not re.fullmatch(self.pattern, raw):
            raise self.refused(raw, self.shape)
        return raw


class Secret(Variable[str]):
    """A key or password, taken exactly as written, spaces and all: every character counts
    in what it signs, decrypts or unlocks, so trimming one would change it."""

    def raw(self) -> str:
        return os.environ.get(self.name, "")

    def parse(self, raw: str) -> str:
        return raw


@dataclass(frozen=True, kw_only=True)
class Choice(Variable[str]):
    """One of ``choices``, in any case; read as the choice is spelled here."""

    choices: tuple[str, ...]

    def parse(self, raw: str) -> str:
        for choice in self.choices:
            if raw.casefold() == choice.casefold():
                return choice
        raise self.refused(raw, " or ".join([", ".join(self.choices[:-1]), self.choices[-1]]))
