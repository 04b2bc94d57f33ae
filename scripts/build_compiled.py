"""Compile pure-Python hot spots with mypyc into build/mypyc/ (``make compiled``, in make venv).

    .venv/bin/python scripts/build_compiled.py cds_service/fhir/fastcheck.py [...]

Optional by design: with ``AIH_CDS_COMPILE=0``, without mypyc, a C compiler or the Python
headers it says so and exits 0, and the service runs the pure-Python modules. The previous
build is removed first, so a skipped build or one that stops half-way leaves none. Writes, after
the extensions, ``build/mypyc/manifest.json`` with the SHA-256 of each source, taken before
compiling:
cds_service/common/compiled.py loads an extension only while its source still has that hash.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import shlex
import shutil
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "make compiled:"


def _manifest_contract() -> ModuleType:
    """cds_service/common/compiled.py, the reader of what this script writes (switch, build
    directory, manifest format, source hash), loaded by path: it imports only the standard
    library, while importing the cds_service package would build the application and may load
    the very extension being rebuilt."""
    spec = importlib.util.spec_from_file_location(
        "_aih_cds_compiled", ROOT / "cds_service" / "common" / "compiled.py"
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"{PREFIX} cds_service/common/compiled.py not found")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


COMPILED = _manifest_contract()
BUILD = COMPILED.build_directory().resolve()  # AIH_CDS_COMPILED_DIR, else build/mypyc


def missing_tools() -> str | None:
    """Why this machine cannot compile, or None."""
    try:
        # optional tools: a venv without them (make run's runtime-only one) skips the build
        import mypyc.build  # noqa: F401, PLC0415 - ships with mypy (a dev dependency)
        import setuptools  # noqa: F401, PLC0415
    except ImportError as error:
        return f"{error.name} is not installed (make venv installs the dev dependencies)"
    compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler}); on Debian: apt-get install gcc"
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not headers.is_file():
        return f"no Python headers ({headers}); on Debian: apt-get install python3-dev"
    return None


def module_name(source: str) -> str:
    return source.removesuffix(".py").replace("/", ".")


def build(sources: list[str]) -> dict[str, dict[str, object]]:
    import setuptools  # noqa: PLC0415 - optional (see missing_tools)
    from mypyc.build import mypycify  # noqa: PLC0415

    hashes = {s: COMPILED.source_hash(ROOT / s) for s in sources}
    extensions = []
    for source in sources:  # one extension per module: each can be used (or not) on its own
        extensions += mypycify(
            ["--no-warn-unused-configs", source], target_dir=str(BUILD / "c" / module_name(source))
        )
    lib, temp = BUILD / "lib", BUILD / "temp"
    os.chdir(BUILD)  # setuptools reads no pyproject.toml here
    setuptools.setup(
        name="aih-cds-compiled",
        ext_modules=extensions,
        script_args=["--quiet", "build_ext", f"--build-lib={lib}", f"--build-temp={temp}"],
    )
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    modules: dict[str, dict[str, object]] = {}
    for source in sources:
        name = module_name(source)
        files = {
            e.name: f"lib/{e.name.replace('.', '/')}{suffix}"
            for e in extensions
            if e.name in (name, f"{name}__mypyc")
        }
        modules[name] = {"source": source, "source_sha256": hashes[source], "extensions": files}
    return modules


def main(sources: list[str]) -> int:
    shutil.rmtree(BUILD, ignore_errors=True)  # skipped or failed: no build, not an old one
    if os.environ.get(COMPILED.SWITCH, "").strip() == "0":
        print(f"{PREFIX} skipped ({COMPILED.SWITCH}=0): the pure-Python modules run")
        return 0
    reason = missing_tools()
    if reason is not None:
        print(f"{PREFIX} skipped, {reason}: the pure-Python modules run")
        return 0
    BUILD.mkdir(parents=True)
    os.chdir(ROOT)  # mypyc names the modules after their paths from here
    modules = build(sources)
    manifest = {
        "format": COMPILED.MANIFEST_FORMAT,
        "suffix": importlib.machinery.EXTENSION_SUFFIXES[0],
        "python": sys.version.split()[0],
        "modules": modules,
    }
    (BUILD / COMPILED.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"{PREFIX} {', '.join(modules)} compiled with mypyc into {BUILD}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
