"""Operations: logging, metrics, tracing and the gunicorn configuration.
May import: common."""
