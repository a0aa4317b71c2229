"""Sphinx configuration of pyvae's documentation site.

Build it with ``sphinx-build -W --keep-going -n docs docs/_build/html`` (``pip install -e
".[docs]"``). The notebooks are rendered from their stored outputs (no execution); the
API reference is generated from the docstrings at every build (``docs/api/``, see
:func:`write_api_pages`), so a new public function appears and a renamed one that a page
still names fails the build.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import pkgutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

import sphinx.ext.napoleon  # noqa: E402

import pyvae  # noqa: E402

# Napoleon reads an attribute's docstring ``Version 2: the data hash ...`` as ``type:
# description``; pyvae's attribute docstrings are prose, so napoleon leaves them alone.
_napoleon_process_docstring = sphinx.ext.napoleon._process_docstring


def _napoleon_except_attributes(app, what, name, obj, options, lines):
    if what not in ("attribute", "data", "property"):
        _napoleon_process_docstring(app, what, name, obj, options, lines)


sphinx.ext.napoleon._process_docstring = _napoleon_except_attributes

project = "pyvae"
author = "the pyvae authors"
copyright = "the pyvae authors, Apache-2.0"
release = version = pyvae.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_nb",
]
# MathJax shipped with the site (sphinx-mathjax-offline, in the docs extra), so that the
# maths renders offline too; without it, MathJax comes from its CDN.
if importlib.util.find_spec("sphinx-mathjax-offline") is not None:
    extensions.append("sphinx-mathjax-offline")
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "notebooks/.ipynb_checkpoints"]
root_doc = "index"

# Notebooks: shown with their stored outputs, never executed while building.
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # the notebooks' titles sit below markdown headers

html_theme = "furo"
html_title = f"pyvae {release}"
html_static_path: list[str] = []
html_show_sourcelink = False

# The API reference: type hints in the signatures, Google/NumPy style docstrings.
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_default_options = {"show-inheritance": True}
autodoc_mock_imports: list[str] = []
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_use_rtype = False

# Nitpicky (-n): every reference must resolve. Intersphinx needs the network, so the
# names of other packages cannot be resolved offline; they, and only they, are ignored.
EXTERNAL = (
    r"torch",
    r"pyro",
    r"numpy",
    r"np",
    r"matplotlib",
    r"PIL",
    r"tqdm",
    r"torchvision",
    r"sklearn",
    r"constriction",
    r"tensorboard",
    r"collections",
    r"typing",
    r"pathlib",
    r"os",
    r"io",
    r"json",
    r"signal",
    r"argparse",
    r"contextlib",
    r"concurrent",
    r"types",
    r"enum",
    r"abc",
    r"dataclasses",
    r"threading",
    r"datetime",
    r"hashlib",
    r"contextvars",
    r"constraints",  # torch.distributions.constraints, as pyvae's modules import it
    r"dist",  # pyro.distributions, likewise
)
#: Names of torch and Pyro that inherited docstrings and Pyro's own types mention bare.
EXTERNAL_BARE = r"ExpandedDistribution|TorchDistribution|Distribution|PyroModule|ELBO|Trace"
BUILTINS = (
    r"int|float|str|bytes|bool|dict|list|tuple|set|frozenset|object|type|None|"
    r"Exception|ValueError|TypeError|RuntimeError|KeyError|OSError|FileNotFoundError|"
    r"FileExistsError|IndexError|AttributeError|NotImplementedError|KeyboardInterrupt|"
    r"BaseException|ImportError|slice|range|callable|Ellipsis|Any|Callable|Iterable|"
    r"Iterator|Sequence|Mapping|Literal|Optional|Union|Path|Tensor|Module|"
    r"builtins\..*"
)
nitpick_ignore_regex = [
    (r"py:.*", rf"({'|'.join(EXTERNAL)})(\..*)?"),
    (r"py:.*", rf"({BUILTINS})"),
    (r"py:.*", rf"({EXTERNAL_BARE})"),
]


# --- the API pages, written at every build -------------------------------------------------

API = DOCS / "api"


def public_modules() -> list[str]:
    """Every module of pyvae whose dotted name has no part starting with ``_``."""
    names = ["pyvae"]
    for info in pkgutil.walk_packages(pyvae.__path__, "pyvae."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def defined_here(module) -> list[str]:
    """The public names a module's own source defines, in source order, restricted to
    its ``__all__`` when it has one."""
    source = Path(module.__file__).read_text(encoding="utf-8")
    names: list[str] = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    public = getattr(module, "__all__", None)
    keep = [n for n in names if not n.startswith("_") and (public is None or n in public)]
    return list(dict.fromkeys(keep))


#: Where each documented object lives: ``key(obj) -> "pyvae.module.Name"``.
HOME: dict[object, str] = {}
#: What each API page documents, and what it re-exports from elsewhere.
MEMBERS: dict[str, list[str]] = {}
REEXPORTS: dict[str, list[str]] = {}


def key(obj, name: str):
    """Objects are keyed by identity; plain constants (small ints and strings are shared
    by identity) by their name and value."""
    if isinstance(obj, int | float | str | bytes | bool | type(None)):
        return ("constant", name, repr(obj))
    return id(obj)


def plan_members(modules: list[str]) -> None:
    """Each public object is documented once: in the public module whose source defines
    it, else (defined in a private module) in the first public module exporting it."""
    loaded = {name: importlib.import_module(name) for name in modules}
    for name, module in loaded.items():
        MEMBERS[name] = defined_here(module)
        for member in MEMBERS[name]:
            HOME.setdefault(key(getattr(module, member), member), f"{name}.{member}")
    for name, module in loaded.items():
        REEXPORTS[name] = []
        for member in getattr(module, "__all__", []):
            obj = getattr(module, member, None)
            if member in MEMBERS[name] or member.startswith("_") or isinstance(obj, type(sys)):
                continue
            if key(obj, member) in HOME:
                REEXPORTS[name].append(member)
            else:
                MEMBERS[name].append(member)
                HOME[key(obj, member)] = f"{name}.{member}"


def module_page(name: str) -> str:
    module = importlib.import_module(name)
    members = MEMBERS[name]
    code = [m for m in members if callable(getattr(module, m))]
    title = f"``{name}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {name}"]
    if code:
        lines += [f"   :members: {', '.join(code)}", "   :undoc-members:"]
    # Constants go through autodata, which shows them with or without a doc comment.
    for member in members:
        if member not in code:
            lines += ["", f".. autodata:: {name}.{member}"]
    if REEXPORTS[name]:
        lines += ["", "Also importable from here (documented where they are defined):", ""]
        lines += [f"- :py:obj:`{name}.{n}`" for n in REEXPORTS[name]]
    return "\n".join(lines) + "\n"


def write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def write_api_pages(app=None) -> None:
    """``docs/api/<module>.rst`` for every public module and ``docs/api/index.rst``."""
    API.mkdir(exist_ok=True)
    modules = public_modules()
    plan_members(modules)
    for name in modules:
        write_if_changed(API / f"{name}.rst", module_page(name))
    for stale in API.glob("*.rst"):
        if stale.stem not in modules and stale.stem != "index":
            stale.unlink()
    index = [
        "API reference",
        "=============",
        "",
        "Generated from the docstrings: every public module (no part of its name starts",
        "with ``_``), with the classes, functions and constants it defines. A name that",
        "a module re-exports is documented once, where it is defined, and listed in the",
        "module that re-exports it.",
        "",
        ".. toctree::",
        "   :maxdepth: 1",
        "",
        *[f"   {name}" for name in modules],
    ]
    write_if_changed(API / "index.rst", "\n".join(index) + "\n")


# --- re-exported names: ``pyvae.fit`` resolves to ``pyvae.train.fit.fit`` -------------------


def resolve_reexport(app, env, node, contnode):
    """Resolve a reference to one of pyvae's public aliases (``pyvae.VAE``,
    ``pyvae.conditional.ConditionalVAE``, an inherited method named from a subclass) to
    the name the object is documented under. Only pyvae's names: anything else stays
    unresolved, and fails the nitpicky build."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "").lstrip("~.")
    modname = node.get("py:module") or ""
    classname = node.get("py:class") or ""
    candidates = [target] if target.startswith("pyvae") else []
    if modname.startswith("pyvae"):
        if classname:
            candidates.append(f"{modname}.{classname}.{target}")
        candidates.append(f"{modname}.{target}")
    for dotted in candidates:
        found, obj = lookup(dotted)
        if not found:
            continue
        home = HOME.get(key(obj, dotted.rsplit(".", 1)[-1])) or canonical_name(obj)
        if home is None or home == dotted:
            continue
        domain = env.get_domain("py")
        resolved = domain.resolve_xref(
            env, node["refdoc"], app.builder, node["reftype"], home, node, contnode
        )
        if resolved is None and node["reftype"] != "obj":
            resolved = domain.resolve_xref(
                env, node["refdoc"], app.builder, "obj", home, node, contnode
            )
        if resolved is not None:
            return resolved
    return None


def lookup(dotted: str):
    """``(True, object)`` for an importable dotted name, else ``(False, None)``."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False, None
        return True, obj
    return False, None


def canonical_name(obj) -> str | None:
    """Where a class, function or method is defined, from its ``__qualname__``."""
    if isinstance(obj, type(sys)):
        return obj.__name__
    obj = getattr(obj, "fget", obj)  # a property
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if module and qualname and module.startswith("pyvae"):
        owner, _, attr = qualname.rpartition(".")
        top = HOME.get(key(lookup(f"{module}.{owner}")[1], owner)) if owner else None
        if top:
            return f"{top}.{attr}"
        return HOME.get(key(obj, attr or qualname)) or f"{module}.{qualname}"
    return None


def setup(app):
    app.connect("builder-inited", write_api_pages)
    app.connect("missing-reference", resolve_reexport)
