"""caredask.cli."""
