"""The sync worker: reads URBIS layers from their sources and stores them in PostGIS."""
