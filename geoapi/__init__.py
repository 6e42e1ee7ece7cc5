"""The geo-API: OGC API Features over the layers the sync keeps in PostGIS."""
