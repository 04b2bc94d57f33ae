"""Operations: logging, metrics, tracing, the gunicorn configuration and worker classes (CPU gate,
lingering close).
May import: common."""
