# FALLBACK ONLY: the benchmark uses deploy/gunicorn.conf.py (the shipped configuration) when it
# exists and this file otherwise. It mirrors `aih-cds serve` plus preload_app; the bench passes
# --bind and --workers on the command line, which take precedence over either file.
workers = 2
worker_class = "gthread"
threads = 4
timeout = 30
accesslog = "-"
# Load the application once in the master and fork the workers from it: cold start is one
# import + rule load instead of one per worker competing for the same cores, and the loaded
# models and rules are shared copy-on-write. The card-log store drops inherited connections in
# each worker (cds_service/store.py).
preload_app = True
