"""The layout is enforced, not just described: a lower layer never imports a higher one
(../shared/STYLE.md, "The house in one picture"). Every import in the package — at module level
or inside a function — is read with `ast` and checked against the layers below."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "parrotrouter"

# Top to bottom. A module may import its own layer and the layers below, never one above.
LAYERS: list[tuple[str, set[str]]] = [
    ("composition", {"cli", "cli_keys", "cli_models", "server", "bootstrap", "__main__"}),
    ("api", {"api"}),  # HTTP only: decode, authenticate, call the serving core, encode
    ("serving", {"serving"}),  # the core: no HTTP framework
    ("state", {"state", "observe"}),  # the app's state object (its observers: metrics, traces, logs)
    ("config", {"config", "discovery"}),  # the config file, the environment and upstreams' lists, into a catalog
    ("limits and credits", {"ratelimit", "accounting"}),
    ("auth", {"auth"}),
    ("routing", {"routing"}),  # knows nothing of keys, limits, credits or HTTP frameworks
    ("providers", {"providers"}),  # know nothing of keys, routing or credits
    ("upstream", {"upstream"}),
    ("base", {"protocol", "catalog", "pricing", "tokens", "errors", "settings", "home", "store", "__init__"}),
]
LAYER_OF = {name: i for i, (_, names) in enumerate(LAYERS) for name in names}
# Third-party imports that would betray a layer's purpose.
FORBIDDEN_LIBRARIES = {"serving": {"aiohttp"}, "routing": {"aiohttp"}, "providers": {"aiohttp.web"},
                       "protocol": {"aiohttp"}, "auth": {"aiohttp"}, "accounting": {"aiohttp"}}
# Known, deliberate exceptions (each with its reason).
ALLOWED = {
    # Settings build the rate-limit defaults once, lazily (a cached property asked per request).
    ("settings", "ratelimit"),
    # Observers are told of a request with its context (a type hint: observe/ never calls serving).
    ("observe", "serving"),
}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def _top(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = ["parrotrouter", *path.relative_to(PACKAGE).with_suffix("").parts[:-1]]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            out.append((node.lineno, name))
            # `from . import x` / `from .. import x` name submodules too
            if not node.module:
                out += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return out


def test_every_top_level_module_has_a_layer() -> None:
    missing = sorted({_top(p) for p in _modules()} - set(LAYER_OF))
    assert not missing, f"give these a layer in LAYERS: {missing}"


def violations(own: str, imports: list[tuple[int, str]]) -> list[str]:
    problems = []
    for line, name in imports:
        parts = name.split(".")
        if parts[0] == "parrotrouter" and len(parts) > 1:
            target = parts[1]
            if target in LAYER_OF and LAYER_OF[target] < LAYER_OF[own] and (own, target) not in ALLOWED:
                problems.append(f"line {line}: {name} ({LAYERS[LAYER_OF[target]][0]} is above "
                                f"{LAYERS[LAYER_OF[own]][0]})")
        for library in FORBIDDEN_LIBRARIES.get(own, ()):
            if name == library or name.startswith(library + "."):
                problems.append(f"line {line}: {name} (the {own} layer does not use {library})")
    return problems


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_layer(path: Path) -> None:
    problems = violations(_top(path), _imports(path))
    assert not problems, "\n".join(problems)


def test_the_checker_catches_what_it_should() -> None:
    assert violations("providers", [(1, "parrotrouter.routing.router")])  # a provider routing
    assert violations("routing", [(1, "parrotrouter.auth.permissions")])  # routing knowing of keys
    assert violations("serving", [(1, "aiohttp.web")])  # the core with an HTTP framework
    assert violations("api", [(1, "parrotrouter.bootstrap")])
    assert not violations("api", [(1, "parrotrouter.serving.core"), (2, "aiohttp.web")])
