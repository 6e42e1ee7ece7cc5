"""What the API answers, as Pydantic models: documentation of the JSON it sends.

The models give `/openapi.json` a schema for each answer (`documented.answers`), and the API
tests validate real answers against them. They are not used to build answers: the routes
keep writing their dicts, orjson text and PostgreSQL's GeoJSON, so that large pages are not
validated and serialised a second time.
"""
