"""The price table (configuration) and the usage report it prices.

A price table maps a model name to its prices in a currency per million tokens: ``input``
(prompt tokens not read from the provider's cache), ``cached_input`` (prompt tokens read from
the cache; the ``input`` price when absent) and ``output`` (completion tokens, reasoning tokens
included, as providers bill them). It is read from JSON or TOML::

    currency = "USD"
    [models."gpt-4o"]
    input = "2.50"
    cached_input = "1.25"
    output = "10.00"

Prices are decimals (give them as strings to keep them exact; numbers are read through their
text), costs are computed with ``Decimal`` and reported as strings. A model the table does not
name has no price: its group's ``cost`` is None and the model is listed in ``unpriced``, never
priced at zero. Costs are computed when a report is made, from the table given then: a new table
re-prices the past (the ledger keeps tokens, not money).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec
from turnlog.engine import ConfigError

from ._usage import UsageGroup, UsageLedger, UsageQuery

_MILLION = Decimal(1_000_000)


class ModelPrice(msgspec.Struct, frozen=True):
    """Prices per million tokens (strings of decimals)."""

    input: str
    output: str
    cached_input: str | None = None

    def cost(self, prompt: int, cached: int, completion: int) -> Decimal:
        cached = min(cached, prompt)
        cached_price = Decimal(self.cached_input if self.cached_input is not None else self.input)
        spent = (prompt - cached) * Decimal(self.input) + cached * cached_price + completion * Decimal(self.output)
        return spent / _MILLION


def _decimal(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"price table: {where} must be a number, not {value!r}")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"price table: {where} must be a number, not {value!r}") from None
    if not d.is_finite() or d < 0:
        raise ConfigError(f"price table: {where} must be a non-negative number, not {value!r}")
    return str(d)


class PriceTable(msgspec.Struct, frozen=True):
    models: dict[str, ModelPrice] = {}
    currency: str = "USD"

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> PriceTable:
        """A table from its JSON/TOML document (checked: a clear ``ConfigError`` names what is wrong)."""
        if not isinstance(data, Mapping):
            raise ConfigError("price table: expected an object with `models`")
        unknown = set(data) - {"models", "currency"}
        if unknown:
            raise ConfigError(f"price table: unknown keys {sorted(unknown)} (expected `models`, `currency`)")
        currency = data.get("currency", "USD")
        if not isinstance(currency, str) or not currency:
            raise ConfigError("price table: `currency` must be a non-empty string")
        models = data.get("models", {})
        if not isinstance(models, Mapping):
            raise ConfigError("price table: `models` must map model names to prices")
        table: dict[str, ModelPrice] = {}
        for name, price in models.items():
            if not isinstance(price, Mapping):
                raise ConfigError(f"price table: model {name!r} must have input and output prices")
            extra = set(price) - {"input", "output", "cached_input"}
            missing = {"input", "output"} - set(price)
            if extra or missing:
                raise ConfigError(
                    f"price table: model {name!r} needs `input` and `output` (and may have `cached_input`); "
                    f"{'missing ' + str(sorted(missing)) if missing else 'unknown ' + str(sorted(extra))}"
                )
            cached = price.get("cached_input")
            table[name] = ModelPrice(
                _decimal(price["input"], f"{name}.input"),
                _decimal(price["output"], f"{name}.output"),
                _decimal(cached, f"{name}.cached_input") if cached is not None else None,
            )
        return cls(table, currency)

    @classmethod
    def load(cls, path: str | Path) -> PriceTable:
        """A table from a ``.toml`` file, else JSON."""
        p = Path(path)
        try:
            text = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"price table {p}: cannot read it ({exc.strerror or exc})") from None
        try:
            data = tomllib.loads(text.decode("utf-8")) if p.suffix.lower() == ".toml" else json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"price table {p}: not valid {'TOML' if p.suffix == '.toml' else 'JSON'} ({exc})"
            ) from None
        return cls.parse(data)


class UsageTotal(msgspec.Struct, frozen=True):
    """One line of a usage report: a group's tokens over every model, and their cost."""

    key: str
    #: The group's tenant ("" when the grouping spans tenants: by model, by day).
    tenant: str
    models: list[str]
    calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    #: The cost in the table's currency (a decimal string); None when a model has no price.
    cost: str | None
    #: The group's models the price table does not name (their tokens are not priced).
    unpriced: list[str] = []


class UsageReport(msgspec.Struct, frozen=True):
    by: str
    currency: str
    since: str | None
    until: str | None
    rows: list[UsageTotal]


def price_groups(groups: Iterable[UsageGroup], prices: PriceTable | None) -> list[UsageTotal]:
    """Per-model sums merged into one total per (key, tenant), priced model by model."""
    merged: dict[tuple[str, str], list[UsageGroup]] = {}
    for g in groups:
        merged.setdefault((g.key, g.tenant), []).append(g)
    out: list[UsageTotal] = []
    for (key, tenant), parts in sorted(merged.items()):
        models = prices.models if prices is not None else {}
        unpriced = sorted({g.model for g in parts if g.model not in models})
        cost = (
            None
            if unpriced
            else sum(
                (models[g.model].cost(g.prompt_tokens, g.cached_tokens, g.completion_tokens) for g in parts),
                Decimal(0),
            )
        )
        out.append(
            UsageTotal(
                key,
                tenant,
                sorted({g.model for g in parts}),
                sum(g.calls for g in parts),
                sum(g.prompt_tokens for g in parts),
                sum(g.completion_tokens for g in parts),
                sum(g.total_tokens for g in parts),
                sum(g.cached_tokens for g in parts),
                sum(g.reasoning_tokens for g in parts),
                None if cost is None else format(cost.normalize(), "f"),
                unpriced,
            )
        )
    return out


async def usage_report(ledger: UsageLedger, query: UsageQuery, prices: PriceTable | None = None) -> UsageReport:
    """The ledger's totals for a query, priced by the table (None: every cost is None)."""
    rows = price_groups(await ledger.groups(query), prices)
    return UsageReport(query.by, prices.currency if prices is not None else "", query.since, query.until, rows)
