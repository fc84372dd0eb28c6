"""caredask.sampling."""
