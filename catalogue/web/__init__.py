"""The web interface: server-rendered pages (Flask + Jinja2) with a little progressive
enhancement, on top of the same services as the JSON API.

Layout:

- :mod:`.site`: the ``web`` blueprint, page rendering (:func:`~.site.render`), navigation
  (:data:`~.site.NAV`), static assets, security headers and HTML error pages;
- :mod:`.auth`: browser sign-in with an API token (session cookie), the session identity,
  CSRF protection and :func:`~.auth.signed_in` for pages that need a user;
- :mod:`.search`, :mod:`.datasets`: the search page and the dataset page;
- :mod:`.labels`, :mod:`.present`: codes and description values in words;
- ``templates/web/`` (every page extends ``base.html``; macros in ``_macros.html``) and
  ``static/`` (``site.css``, ``site.js``: nothing is fetched from elsewhere).
"""

from __future__ import annotations

from flask import Flask

from catalogue.web import admin, auth, cohorts, datasets, provider, search  # noqa: F401 - register the pages' routes
from catalogue.web.site import bp

__all__ = ["bp", "register"]


def register(app: Flask) -> None:
    """Add the web pages to ``app``."""
    app.register_blueprint(bp)
