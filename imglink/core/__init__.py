"""The domain core: images, accounts, storage and imaging, with no Flask or Werkzeug.

The web layer (`imglink.web`, `imglink.cli`) calls into it; it never calls back.
"""
