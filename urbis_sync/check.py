"""Checks of the configuration that need to open the sources (`urbis config check`)."""

from __future__ import annotations

from urbis_core.config import FileSource, ServiceConfig
from urbis_core.errors import ConfigError, SourceError
from urbis_sync.sources.file import FileReader, open_file_source


def check_sources(config: ServiceConfig, layer_ids: list[str] | None = None) -> None:
    """Raise ConfigError listing every layer whose source cannot serve its configuration.

    Network sources (wfs, ogcapi) are only checked structurally: nothing here goes online.
    """
    problems: list[str] = []
    for layer_id in layer_ids or list(config.layers):
        layer = config.layer(layer_id)
        source = layer.source
        if not isinstance(source, FileSource) or source.path is None:
            continue
        where = f"{config.path}: layer '{layer_id}'"
        if not source.path.exists():
            problems.append(f"{where}: source.path {source.path} does not exist")
            continue
        try:
            with open_file_source(source, layer_id) as dataset:
                schema = FileReader(dataset).schema
        except SourceError as exc:
            problems.append(f"{where}: {str(exc).removeprefix(f'layer {layer_id!r}: ')}")
            continue
        if layer.key not in schema.names:
            problems.append(f"{where}: key: field '{layer.key}' is not in the source "
                            f"(it has: {', '.join(schema.names)})")
        missing = [name for name in layer.indexes if name not in schema.names]
        if missing:
            problems.append(f"{where}: indexes: {', '.join(repr(n) for n in missing)} "
                            f"not in the source (it has: {', '.join(schema.names)})")
        if schema.crs is None and source.srid is None:
            problems.append(f"{where}: source.srid: missing, and the source carries no CRS")
    if problems:
        raise ConfigError("\n".join(problems))
