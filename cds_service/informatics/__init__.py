"""Informatics tools: what-if comparison, feedback analytics, scenario charts.
May import: web and the layers below."""
