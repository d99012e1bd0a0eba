"""Policy language: schema, validation and the pure escalation engine."""
