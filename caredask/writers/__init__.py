"""caredask.writers."""
