"""Optional mypyc builds of pure-Python hot spots, used only when built from the current source.

``make compiled`` (part of ``make venv``; scripts/build_compiled.py) compiles a few modules with
mypyc into ``build/mypyc/``: the extension modules under ``lib/`` and ``manifest.json``, which
records the interpreter they were built for and the SHA-256 of each module's source. The
extensions are not beside the sources, so Python's own import never picks one up (it would prefer
an extension module over the ``.py`` of the same name, edited or not). The finder installed here
is the only way in, and it loads a compiled module only when

- ``AIH_CDS_COMPILE`` is not ``0``,
- the manifest was written for this interpreter (same extension-module suffix),
- the ``.py`` it finds has the hash recorded when the extension was built;

otherwise it logs why and imports the ``.py`` (a stale build is a warning: ``make compiled``
rebuilds it). An extension that fails to load also falls back to the ``.py``, with a warning.
Both forms come from the one source file and behave the same (docs/performance.md).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

log = logging.getLogger("cds_service.compiled")

SWITCH = "AIH_CDS_COMPILE"  # "0": never load (nor build) compiled modules
DIRECTORY = "AIH_CDS_COMPILED_DIR"  # where the build is; default <repository>/build/mypyc
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
NOT_BUILT = "not built (make compiled)"


def build_directory() -> Path:
    configured = os.environ.get(DIRECTORY)
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "build/mypyc"


def source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Build:
    """One compiled module of the manifest."""

    source_sha256: str  # of the .py it was built from
    extensions: Mapping[str, Path]  # module name -> extension file (the module and its support)


def read_manifest(directory: Path) -> dict[str, Build] | str:
    """The compiled modules by name, or why none can be used."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return NOT_BUILT
    except (OSError, ValueError) as error:
        return f"unreadable manifest: {error}"
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    try:
        if manifest["format"] != MANIFEST_FORMAT or manifest["suffix"] != suffix:
            return f"built for another interpreter ({manifest['suffix']}, this one {suffix})"
        return {
            name: Build(
                source_sha256=str(entry["source_sha256"]),
                extensions={k: directory / v for k, v in entry["extensions"].items()},
            )
            for name, entry in manifest["modules"].items()
        }
    except (KeyError, TypeError, AttributeError) as error:
        return f"unreadable manifest: {error!r}"


class _ExtensionOrSource(importlib.abc.Loader):
    """Loads the extension; if it cannot be loaded, the source instead (with a warning)."""

    def __init__(self, name: str, extension: Path, source: Path, status: dict[str, str]) -> None:
        self._extension = importlib.machinery.ExtensionFileLoader(name, str(extension))
        self._source = importlib.machinery.SourceFileLoader(name, str(source))
        self._status = status
        self._compiled = True

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        try:
            module = self._extension.create_module(spec)
        except ImportError as error:
            log.warning(
                "%s: the compiled module failed to load (%s); running the pure-Python module",
                spec.name,
                error,
            )
            self._status[spec.name] = f"pure Python: the compiled module failed to load: {error}"
            self._compiled = False
            spec.origin = self._source.path  # __file__ names the .py that runs
            return None
        return module

    def exec_module(self, module: ModuleType) -> None:
        if self._compiled:
            self._extension.exec_module(module)
        else:
            self._source.exec_module(module)


class CompiledFinder(importlib.abc.MetaPathFinder):
    """Serves the modules of one build (see the module doc); other names go to Python's finders."""

    def __init__(self, builds: Mapping[str, Build]) -> None:
        self._builds = dict(builds)
        self._support = {
            name: extension
            for module, build in builds.items()
            for name, extension in build.extensions.items()
            if name != module
        }
        self.status: dict[str, str] = {}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,  # noqa: ARG002 - the finder protocol's
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in self._support:  # the native code a compiled module imports
            return importlib.util.spec_from_file_location(fullname, self._support[fullname])
        build = self._builds.get(fullname)
        if build is None or not path:
            return None
        # the .py Python would import (in the package being imported, wherever it is)
        source = Path(path[0]) / f"{fullname.rpartition('.')[2]}.py"
        reason = self._refusal(fullname, build, source)
        if reason is not None:
            self.status[fullname] = f"pure Python: {reason}"
            return importlib.util.spec_from_file_location(fullname, source)
        self.status[fullname] = "compiled"
        extension = build.extensions[fullname]
        loader = _ExtensionOrSource(fullname, extension, source, self.status)
        return importlib.util.spec_from_file_location(fullname, extension, loader=loader)

    @staticmethod
    def _refusal(name: str, build: Build, source: Path) -> str | None:
        try:
            current = source_hash(source)
        except OSError as error:
            return f"source unreadable: {error}"
        if current != build.source_sha256:
            log.warning(
                "%s: the compiled build is stale (%s changed since it was built); running the "
                "pure-Python module. Rebuild with `make compiled`.",
                name,
                source.name,
            )
            return "the compiled build is stale (source changed since it was built)"
        if not build.extensions[name].is_file():
            return "extension file missing"
        return None


_installed: list[CompiledFinder] = []


def install() -> None:
    """Put the finder of the build in front of Python's (once per process; no build: nothing).
    Called by each package that owns a compiled module, before its submodules are imported."""
    if _installed or os.environ.get(SWITCH, "").strip() == "0":
        return
    directory = build_directory()
    builds = read_manifest(directory)
    if isinstance(builds, str):
        if builds != NOT_BUILT:  # not built: the normal case without a compiler, said by make
            log.warning("compiled modules not used, %s: running the pure-Python modules", builds)
        return
    finder = CompiledFinder(builds)
    _installed.append(finder)
    sys.meta_path.insert(0, finder)


def status() -> dict[str, str]:
    """How each compiled module imported so far runs: "compiled" or "pure Python: <why>"."""
    return {name: why for finder in _installed for name, why in finder.status.items()}
