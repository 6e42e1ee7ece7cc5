"""HTTP routes of the geo-API, one module per group of resources."""
