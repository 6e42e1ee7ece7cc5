"""The credit URBIS's licence asks for wherever its data is shown: pages, maps, tiles' metadata."""

ATTRIBUTION = "Brussels UrbIS®© - Distribution & Copyright CIRB / Paradigm"
