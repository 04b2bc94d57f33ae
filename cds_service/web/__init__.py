"""HTTP endpoints: hook and discovery routes, per-request runtime, input limits,
response headers, OpenAPI. May import every layer below it."""
