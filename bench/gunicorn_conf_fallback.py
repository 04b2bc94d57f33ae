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


def pre_fork(_server: object, _worker: object) -> None:
    """Move everything loaded so far (models, rules, libraries) out of the garbage collector's
    reach before forking: collections no longer walk it (~15-20 % of a large hook call's CPU)
    and workers do not dirty shared pages by touching it."""
    import gc  # noqa: PLC0415 - gunicorn reads this file as configuration

    gc.freeze()
