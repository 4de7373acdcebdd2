"""The public page: Jinja2 template and static files (served by ``lookalike.api``)."""
