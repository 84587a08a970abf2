"""WSGI entry point for gunicorn: ``gunicorn -c api/gunicorn_conf.py api.wsgi:app``."""

from api import create_app
from quacknet.logs import configure_logging
from quacknet.settings import Settings

settings = Settings()
configure_logging(settings)
app = create_app(settings)
