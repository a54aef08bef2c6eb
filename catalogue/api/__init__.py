"""The HTTP layer: the only package (with ``web``) that imports Flask."""

from catalogue.api.app import create_app

__all__ = ["create_app"]
