# FALLBACK ONLY: the benchmark uses deploy/gunicorn.conf.py (the shipped configuration) when it
# exists and this file otherwise. It mirrors `aih-cds serve`; the bench passes --bind and
# --workers on the command line, which take precedence over either file.
workers = 2
worker_class = "gthread"
threads = 4
timeout = 30
accesslog = "-"
