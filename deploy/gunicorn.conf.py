# gunicorn -c deploy/gunicorn.conf.py   (the container's command; `aih-cds serve` uses the same)
# Every value comes from CDS_* settings: CDS_BIND, CDS_WORKERS, CDS_THREADS; see
# docs/operations.md. PROMETHEUS_MULTIPROC_DIR is emptied at start (default: a temp directory).
from cds_service.ops.gunicorn_conf import *  # noqa: F403
