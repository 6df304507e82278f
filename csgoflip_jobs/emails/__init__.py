"""Email: templates rendered with Jinja2, sent over SMTP."""
