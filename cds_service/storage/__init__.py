"""The card log (with its outage spool), feedback, the shared replay cache and their
database migrations. May import: security, hooks and the layers below."""
