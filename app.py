"""Entry point for `flask --app app run` during development."""
from imglink import create_app

app = create_app()
