"""The web layer: the API and page blueprints, auth, quotas, errors and serializers."""
