"""The package's layers: every import goes down or across, never up, and no module imports itself
back through others. Read from the source (imports inside functions count), so a lazy import that
points up is caught as surely as one at the top of a module."""

import ast
import re
from pathlib import Path

import adamesh

SRC = Path(adamesh.__file__).parent

# low to high: a module may import from its own layer and the layers before it
LAYERS = [
    ("errors", "version", "geometry", "phones", "safepickle", "blender_fbx", "gltf_validate"),
    ("fileio", "device"),
    ("audio", "motion"),
    ("clips", "frames", "frontends", "models", "rigs", "render", "testmotion"),
    ("profile", "adapt", "tracking", "avatar", "export", "stream", "senders"),  # inference
    ("api", "live"),
    ("data", "train"),  # corpus, training data and training
    ("eval", "demo", "serve"),  # benchmarks and applications
    ("cli", "__main__", ""),  # the command line, and the package root's `adamesh.load`
]


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def layer(module: str) -> int:
    top = module.split(".")[0]
    found = [i for i, names in enumerate(LAYERS) if top in names]
    assert len(found) == 1, f"adamesh.{module} is in {len(found)} layers of LAYERS; put it in one"
    return found[0]


def imports(module: str) -> set[str]:
    """The adamesh modules `module` imports (names relative to the package)."""

    def resolve(name: str) -> str:
        while name not in MODULES:
            name = name.rpartition(".")[0]
        return name

    out = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and re.match(r"adamesh\b", node.module or ""):
            base = node.module.removeprefix("adamesh").lstrip(".")
            out |= {resolve(f"{base}.{a.name}".strip(".")) for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {
                resolve(a.name.removeprefix("adamesh").lstrip("."))
                for a in node.names
                if re.match(r"adamesh\b", a.name)
            }
        assert not (isinstance(node, ast.ImportFrom) and node.level), f"adamesh.{module}: a relative import"
    return out - {module}


GRAPH = {m: imports(m) for m in MODULES}


def upward(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"adamesh.{m or '(root)'} (layer {layer(m)}) imports adamesh.{t or '(root)'} (layer {layer(t)})"
        for m, targets in sorted(graph.items())
        for t in sorted(targets)
        if layer(t) > layer(m)
    ]


def cycles(graph: dict[str, set[str]]) -> list[str]:
    state, found = {}, []

    def visit(m, path):
        state[m] = "open"
        for t in sorted(graph.get(m, ())):
            if state.get(t) == "open":
                found.append(" -> ".join(path[path.index(t) :] + [t]))
            elif t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return found


def test_every_import_goes_down_or_across_never_up():
    assert not (found := upward(GRAPH)), "\n".join(found)


def test_no_module_imports_itself_back_through_others():
    assert not (found := cycles(GRAPH)), "\n".join(found)


def test_the_checks_catch_an_upward_import_and_a_cycle():
    assert "api" in GRAPH["eval.speed"]  # imports inside functions are read
    assert upward({"motion": {"api"}}) == ["adamesh.motion (layer 2) imports adamesh.api (layer 5)"]
    assert cycles({"api": {"stream"}, "stream": {"frames", "api"}, "frames": set()}) == [
        "api -> stream -> api"
    ]


def test_the_package_version_is_pyproject_s():
    pyproject = (SRC.parents[1] / "pyproject.toml").read_text()
    assert re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1) == adamesh.__version__
