"""Shared core of the URBIS GeoService: settings, configuration, database access, errors.

Imported by `urbis_sync`, `tiles`, `geoapi` and the CLI; imports none of them.
"""
