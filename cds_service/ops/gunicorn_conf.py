"""gunicorn configuration shared by ``aih-cds serve`` and ``deploy/gunicorn.conf.py``.

Read by gunicorn as a configuration module: the names below are gunicorn settings. Workers are
gthread with ``CDS_THREADS`` > 1 (the default, 16: a call may wait on a slow FHIR server, and
threads keep the worker answering meanwhile), where the application holds a per-process CPU gate
(``ops/cpu_gate.py``, CDS_CPU_GATE) so that its calls compute one at a time, in arrival order, as
in a sync worker, and overlap only their waits; sync with ``CDS_THREADS=1`` (an EHR that always
sends prefetch). Either way the answers gunicorn writes itself carry the security headers
(gunicorn_worker.py). The application is built once in the master (preload) and the loaded
objects are frozen out of the garbage collector before forking: cold start falls from 3-6 s to
~1.5 s and a large hook call costs 15-20 % less CPU (bench/, issue 7). Nothing that must not be
shared survives the fork: the database engine drops inherited connections in each child
(store.py), the FHIR session opens no connection in the master, and metric values follow the
worker's pid.
"""

from __future__ import annotations

import gc
import os
import tempfile
from pathlib import Path
from typing import Any

from cds_service.common.settings import Settings
from cds_service.ops.metrics import MULTIPROC_ENV, prepare_multiprocess_dir, worker_exited

_settings = Settings.load()
# Now, while gunicorn reads this file: with preload_app the master builds the application (its
# metrics, and the schema migration when CDS_DATABASE_MIGRATE is on: once, before any worker
# exists) before any server hook such as on_starting runs.
prepare_multiprocess_dir(
    Path(os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="aih-cds-metrics-"))
)

bind = _settings.bind
workers = _settings.workers
# The application must know how many processes serve it: with more than one the replay cache
# is the shared database (a token replayed to another worker is refused), and a memory cache
# stops start-up. (A gunicorn --workers option on the command line bypasses this: set
# CDS_WORKERS instead.)
wsgi_app = f"cds_service:create_app({{'serving_processes': {workers}}})"
threads = _settings.threads
# gthread (with the CPU gate) for several threads, sync for one (docstring above); either class
# also puts the security headers on the answers gunicorn writes itself (431, 400).
worker_class = (
    "cds_service.ops.gunicorn_worker.SecureHeadersSyncWorker"
    if threads == 1
    else "cds_service.ops.gunicorn_worker.SecureHeadersThreadWorker"
)
# X-Forwarded-Proto and friends only from the configured proxies (gunicorn's default trusts
# loopback, which lets anything on the host choose the scheme the application sees).
forwarded_allow_ips = ",".join(_settings.trusted_proxies)
# A hook call is bounded by CDS_FHIR_TIMEOUT_S; 30 s only catches a stuck worker.
timeout = 30
graceful_timeout = 20
# No keep-alive: a gthread worker keeps every connection it accepted, so with keep-alive one
# worker may serve most of a client's connections while another idles (151 against 14 calls in
# one benchmark run), and CPU-bound calls queue on the busy worker's gate. Closing after each
# answer lets every call go to whichever worker accepts first (as sync workers do); the TLS
# proxy in front keeps its own connections to the EHR. (gunicorn's wait for the client to close
# after the answer runs off the accept loop: ops/lingering_close.py.)
keepalive = 0
# The application logs every request itself (text or JSON, with the request id).
accesslog = None
preload_app = True
# gunicorn's control socket lives at a fixed path in $HOME: two servers on one host would share
# it, and a read-only container home cannot hold it. Nothing here uses it.
control_socket_disable = True


def pre_fork(_server: Any, _worker: Any) -> None:
    """Move everything loaded so far (models, rules, libraries) out of the garbage collector's
    reach: collections no longer walk it, and workers do not dirty the shared pages by doing so."""
    gc.freeze()


def child_exit(_server: Any, worker: Any) -> None:
    worker_exited(worker.pid)
