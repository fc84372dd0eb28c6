"""caredask.statistics."""
