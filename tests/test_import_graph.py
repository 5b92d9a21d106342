"""The module graph inside the package: the entropy coder does not depend on
the coding loop (issue 13): both take the block order from blockcodec.scan."""
from __future__ import annotations

import ast
from pathlib import Path

import blockcodec

PACKAGE = Path(blockcodec.__file__).parent


def _imports(module: str) -> set[str]:
    """The blockcodec modules ``module`` (dotted, without 'blockcodec.')
    imports at any level of its source, lazily or not."""
    path = PACKAGE.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    if not path.exists():
        return set()     # a compiled extension (_cext)
    base = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            parent = base[: len(base) - node.level + 1]
            target = ".".join(parent + ([node.module] if node.module else []))
            names = [target] if node.module else []
            names += [f"{target}.{a.name}".lstrip(".") for a in node.names
                      if PACKAGE.joinpath(*(f"{target}.{a.name}".lstrip(".")).split(".")).with_suffix(".py").exists()]
            out.update(n for n in names if n)
        elif isinstance(node, ast.Import):
            out.update(a.name[len("blockcodec."):] for a in node.names if a.name.startswith("blockcodec."))
    return out


def _reachable(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(_imports(m))
    return seen - {module}


def test_entropy_does_not_import_the_coding_loop():
    deps = _reachable("entropy")
    assert "scan" in deps
    assert "engine" not in deps and not any(d.startswith("predictors") for d in deps), sorted(deps)


def test_scan_order_is_shared():
    from blockcodec import engine, entropy, scan
    assert engine.wavefronts is scan.wavefronts
    assert entropy.wavefronts is scan.wavefronts
    assert "scan" in _reachable("engine")
