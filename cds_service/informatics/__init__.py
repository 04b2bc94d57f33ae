"""Informatics tools: what-if comparison, feedback analytics, scenario charts, where a code
counts (value-set membership).
May import: web and the layers below."""
