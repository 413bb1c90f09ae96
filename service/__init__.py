"""The BentoML services that answer survey pipelines' FITS cutouts.

Imports from ``training`` and ``monitors``; see ../shared/DESIGN.md for the direction of imports.
"""
