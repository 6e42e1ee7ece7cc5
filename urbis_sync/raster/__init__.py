"""Raster layers (`type: raster`): GeoTIFF/COG sources kept as one Cloud-Optimized GeoTIFF each.

`source` locates and fingerprints the files, `validate` says what is wrong with them, `cog`
writes the COG, `stats` computes the bands' statistics, `run` is one sync run.
"""
