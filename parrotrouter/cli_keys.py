"""`parrotrouter keys ...` and `parrotrouter credits add`: key administration on the database.

These work whether or not the server runs; running servers see changes within a second or two.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn, TypeVar

import click

from .api.json import encode
from .auth.key_schema import KeyCreate, KeyUpdate
from .auth.keystore import KeyStore
from .bootstrap import migrate_database, prepare
from .errors import ConfigError, ParrotError, echo
from .protocol.validation import convert
from .store.db import create_engine, database_url
from .store.schema import usd_text

T = TypeVar("T")


def _fail(param: str | None, message: str) -> NoReturn:
    """One line on stderr, exit status 1: the CLI's form of the API's 400."""
    where = f" ({param})" if param else ""
    click.echo(f"error{where}: {message}", err=True)
    sys.exit(1)


def _run(action: Callable[[KeyStore], Awaitable[T]], home: str | None, config: str | None) -> T:
    try:
        prepared = prepare({k: v for k, v in {"home": home, "config": config}.items() if v})
    except ConfigError as err:
        click.echo(err.render(), err=True)
        sys.exit(2)
    migrate_database(prepared)

    async def go() -> T:
        engine = create_engine(database_url(prepared.settings.database_url, prepared.home.path))
        try:
            return await action(KeyStore(engine, prepared.home.server_secret()))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except ParrotError as err:
        _fail(err.param, err.message)


def _usd(value: Any) -> str:
    return usd_text(value) if isinstance(value, Decimal) else str(value)


def _print_keys(keys: list[dict[str, Any]]) -> None:
    rows = [("ID", "NAME", "PREFIX", "ACCOUNT", "BALANCE USD", "STATUS", "EXPIRES")]
    for k in keys:
        status = "revoked" if k["revoked"] else "active"
        rows.append((k["id"], k["name"], k["prefix"] + "…", k["account_id"],
                     _usd(k.get("balance", {}).get("credits", "")), status, k["expires_at"] or "-"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _show(key: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(encode(key).decode())
        return
    secret = key.get("key")
    for name in ("id", "name", "description", "prefix", "account_id", "balance", "permissions", "restrictions",
                 "metadata", "expires_at", "revoked", "created_at", "updated_at"):
        value = key.get(name)
        if isinstance(value, dict):
            value = encode(value).decode()
        click.echo(f"{name:13} {value if value is not None else '-'}")
    if secret:
        click.echo(f"\nkey           {secret}\n(shown once: store it now; only its hash is kept)")


common = [
    click.option("--home", type=click.Path(file_okay=False), help="Data directory [env PARROTROUTER_HOME]."),
    click.option("--config", type=click.Path(dir_okay=False), help="Config file (for database_url)."),
]


def with_common(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(common):
        fn = option(fn)
    return fn


def _permissions(models: tuple[str, ...], deny: tuple[str, ...], features: tuple[str, ...], read_only: bool,
                 rpm: int | None, rpd: int | None, tpm: int | None, max_cost: str | None,
                 raw: str | None) -> dict[str, Any] | None:
    perms: dict[str, Any] = _json_object(raw, "permissions")
    if models or deny:
        perms["models"] = {"allowed": list(models) or None, "denied": list(deny) or None} if deny else list(models)
    if features:
        perms["features"] = list(features)
    if read_only:
        perms["operations"] = ["read"]
    for name, value in (("max_requests_per_minute", rpm), ("max_requests_per_day", rpd),
                        ("max_tokens_per_minute", tpm), ("max_cost_per_day", max_cost)):
        if value is not None:
            perms[name] = value
    return perms or None


def _json_object(raw: str | None, param: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        _fail(param, f"not valid JSON: {echo(str(exc))}")
    if not isinstance(value, dict):
        _fail(param, "must be a JSON object.")
    return value


def _restrictions(ips: tuple[str, ...], domains: tuple[str, ...], raw: str | None) -> dict[str, Any] | None:
    out: dict[str, Any] = _json_object(raw, "restrictions")
    if ips:
        out["ip_whitelist"] = list(ips)
    if domains:
        out["domains"] = list(domains)
    return out or None


key_options = [
    click.option("--description"),
    click.option("--model", "models", multiple=True, help="Allowed model (repeatable; * patterns)."),
    click.option("--deny-model", "deny", multiple=True, help="Denied model (repeatable)."),
    click.option("--feature", "features", multiple=True,
                 help="Allowed feature: chat, completions, streaming, tools, vision, json_mode (repeatable)."),
    click.option("--read-only", is_flag=True, help="Only read endpoints (no completions)."),
    click.option("--rpm", type=int, help="max_requests_per_minute"),
    click.option("--rpd", type=int, help="max_requests_per_day"),
    click.option("--tpm", type=int, help="max_tokens_per_minute"),
    click.option("--max-cost-per-day", help="USD per UTC day"),
    click.option("--ip", "ips", multiple=True, help="Allowed client IP or CIDR (repeatable)."),
    click.option("--domain", "domains", multiple=True, help="Allowed Origin host or *.host (repeatable)."),
    click.option("--permissions", "permissions_json", help="Full permissions object as JSON."),
    click.option("--restrictions", "restrictions_json", help="Full restrictions object as JSON."),
    click.option("--expires", help="Expiry, ISO 8601 with time zone (2026-12-31T23:59:59Z)."),
    click.option("--json", "as_json", is_flag=True, help="Print JSON."),
]


def with_key_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(key_options):
        fn = option(fn)
    return with_common(fn)


def _body(name: str | None, description: str | None, models: tuple[str, ...], deny: tuple[str, ...],
          features: tuple[str, ...], read_only: bool, rpm: int | None, rpd: int | None, tpm: int | None,
          max_cost_per_day: str | None, ips: tuple[str, ...], domains: tuple[str, ...],
          permissions_json: str | None, restrictions_json: str | None, expires: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if description is not None:
        body["description"] = description
    perms = _permissions(models, deny, features, read_only, rpm, rpd, tpm, max_cost_per_day, permissions_json)
    if perms is not None:
        body["permissions"] = perms
    restrictions = _restrictions(ips, domains, restrictions_json)
    if restrictions is not None:
        body["restrictions"] = restrictions
    if expires is not None:
        body["expires_at"] = expires
    return body


@click.group()
def keys() -> None:
    """Create and manage API keys (stored hashed; a key's secret is shown once)."""


@keys.command("create")
@click.option("--name", required=True)
@click.option("--credits", help="Initial balance of a new account, in USD.")
@click.option("--account", help="Share the balance of this existing account instead.")
@with_key_options
def keys_create(name: str, credits: str | None, account: str | None, as_json: bool, home: str | None,
                config: str | None, **options: Any) -> None:
    """Create a key; prints its secret once."""
    body = _body(name, **options)
    if credits is not None:
        body["credits"] = credits
    if account is not None:
        body["account_id"] = account
    created = _run(lambda store: _create(store, body), home, config)
    _show(created, as_json)


async def _create(store: KeyStore, body: dict[str, Any]) -> dict[str, Any]:
    created, _ = await store.create(convert(body, KeyCreate))
    return created


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_common
def keys_list(as_json: bool, home: str | None, config: str | None) -> None:
    """List keys (never their secrets)."""
    found = _run(lambda store: store.list(), home, config)
    if as_json:
        click.echo(encode(found).decode())
    else:
        _print_keys(found)


@keys.command("show")
@click.argument("key_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_common
def keys_show(key_id: str, as_json: bool, home: str | None, config: str | None) -> None:
    """Show one key."""
    _show(_run(lambda store: store.get(key_id), home, config), as_json)


@keys.command("update")
@click.argument("key_id")
@click.option("--name")
@with_key_options
def keys_update(key_id: str, name: str | None, as_json: bool, home: str | None, config: str | None,
                **options: Any) -> None:
    """Change a key's name, permissions, restrictions or expiry."""
    body = _body(name, **options)
    if not body:
        raise click.UsageError("nothing to update")
    _show(_run(lambda store: store.update(key_id, convert(body, KeyUpdate), set(body)), home, config), as_json)


@keys.command("revoke")
@click.argument("key_id")
@with_common
def keys_revoke(key_id: str, home: str | None, config: str | None) -> None:
    """Revoke a key (takes effect on every running server within seconds)."""
    shown = _run(lambda store: store.revoke(key_id), home, config)
    click.echo(f"revoked {shown['id']} ({shown['name']})")


@keys.command("rotate")
@click.argument("key_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_common
def keys_rotate(key_id: str, as_json: bool, home: str | None, config: str | None) -> None:
    """Give a key a new secret (same id and settings); the old secret stops working."""
    _show(_run(lambda store: store.rotate(key_id), home, config), as_json)


@click.group()
def credits() -> None:
    """Manage USD credit balances."""


@credits.command("add")
@click.argument("key_or_account")
@click.argument("amount")
@with_common
def credits_add(key_or_account: str, amount: str, home: str | None, config: str | None) -> None:
    """Add AMOUNT USD (negative to remove) to the account of a key (key_...) or an account (acct_...)."""
    try:
        value = Decimal(amount.strip())
    except InvalidOperation:
        _fail("amount", f"'{echo(amount)}' is not a number of USD.")
    result = _run(lambda store: store.add_credits(key_or_account, value), home, config)
    click.echo(f"{result['account_id']}: balance {_usd(result['balance']['credits'])} USD")
