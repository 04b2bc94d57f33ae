"""The optional mypyc build (make compiled): which fastcheck runs, that the compiled and the
pure-Python module agree, and that a stale or broken build is never used."""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cds_service.common import compiled
from cds_service.fhir import fastcheck
from tests.conftest import REPO

MODULE = "cds_service.fhir.fastcheck"
SOURCE = REPO / "cds_service" / "fhir" / "fastcheck.py"
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]

# Run in a child process: the verdicts of the fast proof and of the whole check on the corpus
# of tests/unit/test_fhir_fastcheck.py and two rounds of its mutations, and which module ran.
VERDICTS = """
import json, random
from cds_service.common import compiled
from cds_service.fhir import fastcheck
from cds_service.fhir.validation import model_for, validation_problem
from tests.unit.test_fhir_fastcheck import CORPUS, mutate
resources = list(CORPUS)
for seed in (0, 1):
    rng = random.Random(seed)
    resources += [mutate(r, rng) for r in CORPUS]
print(json.dumps({
    "file": fastcheck.__file__,
    "status": compiled.status(),
    "proven": [fastcheck.proven_valid(model_for(r["resourceType"]), r) for r in resources],
    "problems": [validation_problem(r) for r in resources],
}))
"""


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != compiled.SWITCH}
    return subprocess.run(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-c", code],
        cwd=REPO,
        env=environment | {"PYTHONPATH": str(REPO)} | env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def current_build() -> bool:
    """A build of fastcheck.py as it is now, for this interpreter."""
    builds = compiled.read_manifest(compiled.build_directory())
    return (
        not isinstance(builds, str)
        and MODULE in builds
        and builds[MODULE].source_sha256 == compiled.source_hash(SOURCE)
    )


def test_the_module_this_process_runs_is_the_one_the_build_allows() -> None:
    expected = current_build() and os.environ.get(compiled.SWITCH) != "0"
    ran = "compiled" if fastcheck.__file__.endswith(SUFFIX) else "pure Python"
    print(f"fastcheck in this test process: {ran} ({fastcheck.__file__})")
    assert fastcheck.__file__.endswith(SUFFIX) == expected
    assert compiled.status().get(MODULE, "pure Python") == ran


def test_compiled_and_pure_python_fastcheck_agree() -> None:
    if not current_build():
        pytest.skip("fastcheck is not compiled here (make compiled; needs a C compiler)")
    pure = json.loads(run_python(VERDICTS, AIH_CDS_COMPILE="0").stdout)
    native = json.loads(run_python(VERDICTS).stdout)
    print(f"pure: {pure['file']}; compiled: {native['file']}")
    assert pure["file"] == str(SOURCE)
    assert pure["status"] == {}
    assert native["file"].endswith(SUFFIX)
    assert native["status"] == {MODULE: "compiled"}
    assert native["proven"] == pure["proven"]
    assert native["problems"] == pure["problems"]
    assert any(pure["proven"])
    assert not all(pure["proven"])  # the mutations produce resources it cannot prove


def copy_build(destination: Path) -> Path:
    shutil.copytree(compiled.build_directory(), destination, ignore=shutil.ignore_patterns("c"))
    return destination


def edit_manifest(directory: Path, **changes: Any) -> None:
    path = directory / compiled.MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["modules"][MODULE] |= changes
    path.write_text(json.dumps(manifest), encoding="utf-8")


WHICH = "from cds_service.fhir import fastcheck; print(fastcheck.__file__)"


def test_a_stale_build_is_refused_with_a_log_line(tmp_path: Path) -> None:
    if not current_build():
        pytest.skip("fastcheck is not compiled here (make compiled; needs a C compiler)")
    current = copy_build(tmp_path / "current")
    fresh = run_python(WHICH, AIH_CDS_COMPILED_DIR=str(current))
    assert fresh.stdout.strip().endswith(SUFFIX)
    assert "stale" not in fresh.stderr
    stale = copy_build(tmp_path / "stale")
    edit_manifest(stale, source_sha256=hashlib.sha256(b"an older fastcheck.py").hexdigest())
    refused = run_python(WHICH, AIH_CDS_COMPILED_DIR=str(stale))
    assert refused.stdout.strip() == str(SOURCE)
    assert f"{MODULE}: the compiled build is stale" in refused.stderr


def make_module(tmp_path: Path, name: str, text: str) -> tuple[Path, str]:
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "mod.py").write_text(text, encoding="utf-8")
    return package, compiled.source_hash(package / "mod.py")


def import_through(
    finder: compiled.CompiledFinder, name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Any:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    for key in (name, name.rpartition(".")[0]):
        monkeypatch.delitem(sys.modules, key, raising=False)
    return importlib.import_module(name)


# (package, why the source runs): a build of an older source (its extension is never opened),
# or a build of this source whose extension cannot be loaded
FALLBACKS = [
    ("stalepkg", "the compiled build is stale (mod.py changed"),
    ("brokenpkg", "the compiled module failed to load"),
]


@pytest.mark.parametrize(("package_name", "why"), FALLBACKS)
def test_the_finder_falls_back_to_the_source_and_says_why(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    package_name: str,
    why: str,
) -> None:
    package, digest = make_module(tmp_path, package_name, "ANSWER = 42\n")
    name = f"{package_name}.mod"
    extension = tmp_path / f"mod{SUFFIX}"
    extension.write_bytes(b"not a shared object")
    recorded = "0" * 64 if package_name == "stalepkg" else digest
    finder = compiled.CompiledFinder({name: compiled.Build(recorded, {name: extension})})
    with caplog.at_level(logging.WARNING, "cds_service.compiled"):
        module = import_through(finder, name, monkeypatch, tmp_path)
    assert module.ANSWER == 42
    assert module.__file__ == str(package / "mod.py")
    assert finder.status[name].startswith("pure Python: " + why.partition(" (")[0])
    assert f"{name}: {why}" in caplog.text


@pytest.mark.parametrize(
    ("manifest", "why"),
    [
        ({"format": 1, "suffix": ".cpython-39-x86_64-linux-gnu.so", "modules": {}}, "another"),
        ({"format": 1, "suffix": SUFFIX, "modules": {MODULE: {"extensions": {}}}}, "unreadable"),
        ({"format": 1, "suffix": SUFFIX, "modules": []}, "unreadable"),
        ([], "unreadable"),
    ],
)
def test_a_manifest_this_interpreter_cannot_use_is_refused(
    tmp_path: Path, manifest: Any, why: str
) -> None:
    (tmp_path / compiled.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    assert why in str(compiled.read_manifest(tmp_path))
    assert compiled.read_manifest(tmp_path / "absent") == compiled.NOT_BUILT


BUILD_SCRIPT = [sys.executable, str(REPO / "scripts" / "build_compiled.py"), str(SOURCE)]


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"AIH_CDS_COMPILE": "0"}, "skipped (AIH_CDS_COMPILE=0)"),
        ({"CC": "no-such-compiler"}, "skipped, no C compiler (no-such-compiler)"),
    ],
)
def test_the_build_says_why_it_is_skipped_and_leaves_no_old_build(
    tmp_path: Path, env: dict[str, str], said: str
) -> None:
    directory = tmp_path / "mypyc"
    directory.mkdir()
    (directory / compiled.MANIFEST).write_text("{}", encoding="utf-8")  # an earlier build
    done = subprocess.run(  # noqa: S603 - this interpreter, the project's script
        BUILD_SCRIPT,
        env={k: v for k, v in os.environ.items() if k != compiled.SWITCH}
        | {"AIH_CDS_COMPILED_DIR": str(directory)}
        | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert said in done.stdout
    assert "the pure-Python modules run" in done.stdout
    assert not directory.exists()


def test_make_rebuilds_when_a_compiled_source_is_newer() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    plan = subprocess.run(  # dry run (-n): nothing is built
        ["make", "-n", "-W", "cds_service/fhir/fastcheck.py", "build/mypyc/manifest.json"],  # noqa: S607
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "scripts/build_compiled.py cds_service/fhir/fastcheck.py" in plan.stdout
