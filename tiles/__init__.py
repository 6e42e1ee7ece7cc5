"""Vector and raster tiles from PostGIS (OGC API Tiles).

Empty for now: tiles are the subject of a later issue; the package exists so the layout and
the import rules (tiles imports only the shared core) hold from the start.
"""
