"""The shipped gunicorn configuration (deploy/gunicorn.conf.py): the worker class follows
CDS_THREADS (gthread for several, the default, with the CPU gate; sync for one), and everything
else it did before stays: preload, gc.freeze before forking, the worker count handed to the
application (shared replay cache), the metrics directory, no control socket."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

from tests.conftest import REPO

READ_CONFIGURATION = """
import json, runpy
c = runpy.run_path("deploy/gunicorn.conf.py")
print(json.dumps({k: c[k] for k in ("worker_class", "threads", "workers", "wsgi_app",
    "preload_app", "control_socket_disable", "timeout")} | {
    "pre_fork": callable(c.get("pre_fork")), "child_exit": callable(c.get("child_exit"))}))
"""


def configuration(tmp_path: Path, **env: str) -> dict[str, Any]:
    settings = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    settings |= {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), **env}
    done = subprocess.run(  # noqa: S603 - our own interpreter on our own file
        [sys.executable, "-c", READ_CONFIGURATION],
        cwd=REPO,
        env=settings,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_default_is_gated_threads_with_everything_the_configuration_did_before(
    tmp_path: Path,
) -> None:
    conf = configuration(tmp_path)
    assert issubclass(worker_class(conf), ThreadWorker)  # with the CPU gate (ops/cpu_gate.py)
    assert (conf["threads"], conf["workers"]) == (16, 2)
    assert conf["wsgi_app"] == "cds_service:create_app({'serving_processes': 2})"
    assert conf["preload_app"] is True
    assert conf["control_socket_disable"] is True
    assert conf["pre_fork"]  # gc.freeze() before forking
    assert conf["child_exit"]  # the metrics of a dead worker
    assert (tmp_path / "metrics").is_dir()


def worker_class(conf: dict[str, Any]) -> type:
    module, name = str(conf["worker_class"]).rsplit(".", 1)
    found: type = getattr(importlib.import_module(module), name)
    return found


@pytest.mark.parametrize(("threads", "expected"), [("1", SyncWorker), ("4", ThreadWorker)])
def test_worker_class_follows_the_thread_count(
    tmp_path: Path, threads: str, expected: type
) -> None:
    conf = configuration(tmp_path, CDS_THREADS=threads, CDS_WORKERS="3")
    assert issubclass(worker_class(conf), expected)
    # gunicorn's own error answers carry the security headers with either class
    assert worker_class(conf).__module__ == "cds_service.ops.gunicorn_worker"
    assert conf["threads"] == int(threads)
    assert conf["wsgi_app"] == "cds_service:create_app({'serving_processes': 3})"
