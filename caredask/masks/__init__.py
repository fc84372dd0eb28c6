"""caredask.masks."""
