"""WSGI entry point for gunicorn: `gunicorn wsgi:app`."""
from imglink import create_app

app = create_app()
