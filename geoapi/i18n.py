"""The HTML pages' languages: which one a request reads, and every string the pages show.

French, Dutch and English. The `lang` query parameter decides (`fr`, `nl`, `en`; a region such
as `fr-BE` reads as its language); without it, or with a language the pages are not written in,
the Accept-Language header does (its q-values honoured, `q=0` meaning "not this one"); English
when neither names one of the three. JSON answers do not change with the language: a layer's
titles are all in them already.

Over 400 lines: most of it is the catalogue, every string in three languages side by side so
that a translator reads and checks them together.
"""

from __future__ import annotations

from dataclasses import dataclass

from geoapi.header_values import weighted

LANGUAGES = ("en", "fr", "nl")
FALLBACK = "en"
LANGUAGE_NAMES = {"en": "English", "fr": "Français", "nl": "Nederlands"}
LANG_DESCRIPTION = (
    "Language of the HTML page: fr, nl or en. Without it (or with another language) the "
    "Accept-Language header chooses, then English. JSON answers are the same in every language"
)


@dataclass(frozen=True)
class PageLanguage:
    code: str  # one of LANGUAGES
    negotiated: bool  # read from Accept-Language: the page varies with that header


def _primary(tag: str) -> str:
    return tag.strip().lower().replace("_", "-").split("-")[0]


def accept_language(header: str) -> str | None:
    """The language of ours the Accept-Language header prefers most (None: none of ours).

    Ties keep the header's order; `*` names none in particular, so it does not choose.
    """
    ranked: list[tuple[float, int, str]] = []
    for position, (tag, quality) in enumerate(weighted(header)):
        if quality is not None and quality > 0 and _primary(tag) in LANGUAGES:
            ranked.append((-quality, position, _primary(tag)))
    return min(ranked)[2] if ranked else None


def choose_language(lang: str | None, header: str) -> PageLanguage:
    if lang and _primary(lang) in LANGUAGES:
        return PageLanguage(_primary(lang), negotiated=False)
    return PageLanguage(accept_language(header) or FALLBACK, negotiated=True)


def number(value: int | float, language: str) -> str:
    """A count as its readers write it: 1,234 (en), 1 234 (fr), 1.234 (nl)."""
    text = f"{value:,}"
    separator = {"en": ",", "fr": "\u202f", "nl": "."}[language]
    if isinstance(value, float):
        whole, _, fraction = text.partition(".")
        decimal = "." if language == "en" else ","
        return whole.replace(",", separator) + (decimal + fraction if fraction else "")
    return text.replace(",", separator)


# Each string in English, French and Dutch; `{name}` fields are filled by `text`. The strings
# are plain text: the pages escape them (and what fills them) where they place them.
_CATALOGUE: dict[str, tuple[str, str, str]] = {
    # the frame of every page
    "nav.home": ("Home", "Accueil", "Start"),
    "nav.collections": ("Collections", "Collections", "Collecties"),
    "nav.map": ("Map", "Carte", "Kaart"),
    "nav.docs": ("API documentation", "Documentation de l'API", "API-documentatie"),
    "nav.language": ("Language", "Langue", "Taal"),
    "footer.data": ("Data:", "Données :", "Gegevens:"),
    "footer.json": ("This page as JSON", "Cette page en JSON", "Deze pagina als JSON"),
    # landing page
    "landing.description": (
        "Brussels-Capital Region URBIS reference layers (addresses, municipalities, buildings, "
        "streets...) kept current from URBIS and served as OGC API Features.",
        "Les couches de référence URBIS de la Région de Bruxelles-Capitale (adresses, communes, "
        "bâtiments, rues...), tenues à jour depuis URBIS et servies en OGC API Features.",
        "De URBIS-referentielagen van het Brussels Hoofdstedelijk Gewest (adressen, gemeenten, "
        "gebouwen, straten...), bijgewerkt vanuit URBIS en aangeboden als OGC API Features.",
    ),
    "landing.collections": (
        "The collections (URBIS layers)",
        "Les collections (couches URBIS)",
        "De collecties (URBIS-lagen)",
    ),
    "landing.map": (
        "A map of all layers",
        "Une carte de toutes les couches",
        "Een kaart van alle lagen",
    ),
    "landing.geocode": ("Find an address", "Chercher une adresse", "Een adres zoeken"),
    "landing.lookup": (
        "What is at a point",
        "Ce qui se trouve en un point",
        "Wat er op een punt ligt",
    ),
    "landing.tiles": (
        "Vector tiles of all layers together",
        "Tuiles vectorielles de toutes les couches",
        "Vectortegels van alle lagen samen",
    ),
    "landing.tms": ("The tile matrix sets", "Les grilles de tuiles", "De tegelmatrixsets"),
    "landing.styles": (
        "Map styles (MapLibre)",
        "Styles de carte (MapLibre)",
        "Kaartstijlen (MapLibre)",
    ),
    "landing.conformance": (
        "OGC API conformance classes implemented",
        "Classes de conformité OGC API mises en œuvre",
        "Geïmplementeerde OGC API-conformiteitsklassen",
    ),
    "landing.openapi": (
        "The API definition (OpenAPI 3)",
        "La définition de l'API (OpenAPI 3)",
        "De API-definitie (OpenAPI 3)",
    ),
    "landing.docs": ("The API documentation", "La documentation de l'API", "De API-documentatie"),
    "conformance.title": ("Conformance classes", "Classes de conformité", "Conformiteitsklassen"),
    # coverages (raster layers): the list and one coverage
    "landing.coverages": (
        "The coverages (raster layers: orthophotos, terrain)",
        "Les couvertures (couches raster : orthophotos, relief)",
        "De coverages (rasterlagen: orthofoto's, terrein)",
    ),
    "coverages.title": (
        "Coverages (raster layers)",
        "Couvertures (couches raster)",
        "Coverages (rasterlagen)",
    ),
    "jobs.title": ("Jobs", "Tâches", "Taken"),
    "jobs.none": (
        "No job is kept: none was submitted, or they finished too long ago.",
        "Aucune tâche n'est conservée : aucune n'a été soumise, ou elles sont terminées depuis "
        "trop longtemps.",
        "Er wordt geen taak bewaard: er is er geen ingediend, of ze zijn al te lang klaar.",
    ),
    "job.title": (
        "Statistics of {coverage} per feature of {collection}",
        "Statistiques de {coverage} par objet de {collection}",
        "Statistieken van {coverage} per object van {collection}",
    ),
    "job.id": ("job", "tâche", "taak"),
    "job.coverage": ("coverage", "couverture", "coverage"),
    "job.collection": ("collection", "collection", "collectie"),
    "job.band": ("band", "bande", "band"),
    "job.percentiles": ("percentiles", "centiles", "percentielen"),
    "job.status": ("status", "état", "status"),
    "job.progress": ("progress", "avancement", "voortgang"),
    "job.progress_of": (
        "{done} of {total} features",
        "{done} objets sur {total}",
        "{done} van {total} objecten",
    ),
    "job.created": ("submitted", "soumise", "ingediend"),
    "job.started": ("started", "commencée", "gestart"),
    "job.finished": ("finished", "terminée", "klaar"),
    "job.error": ("why it failed", "raison de l'échec", "reden van de mislukking"),
    "job.results": ("Results", "Résultats", "Resultaten"),
    "job.csv": (
        "The statistics as CSV (one row per feature)",
        "Les statistiques en CSV (une ligne par objet)",
        "De statistieken als CSV (één rij per object)",
    ),
    "job.gpkg": (
        "The statistics with the features' geometries as GeoPackage (EPSG:31370)",
        "Les statistiques avec la géométrie des objets en GeoPackage (EPSG:31370)",
        "De statistieken met de geometrie van de objecten als GeoPackage (EPSG:31370)",
    ),
    "job.refreshing": (
        "This page reloads itself every two seconds until the job ends.",
        "Cette page se recharge toutes les deux secondes jusqu'à la fin de la tâche.",
        "Deze pagina herlaadt zichzelf om de twee seconden tot de taak klaar is.",
    ),
    "job.status.accepted": ("waiting for a worker", "en attente", "wacht op een plaats"),
    "job.status.running": ("running", "en cours", "bezig"),
    "job.status.successful": ("done", "terminée", "klaar"),
    "job.status.failed": ("failed", "échouée", "mislukt"),
    "job.status.dismissed": ("dismissed", "annulée", "geannuleerd"),
    "coverages.none": (
        "No raster layer has been synced yet.",
        "Aucune couche raster n'a encore été synchronisée.",
        "Er is nog geen rasterlaag gesynchroniseerd.",
    ),
    "coverage.kind": ("kind", "nature", "soort"),
    "coverage.imagery": ("imagery (RGB)", "image (RVB)", "beeld (RGB)"),
    "coverage.data": ("data values", "valeurs de mesure", "meetwaarden"),
    "coverage.synced": ("last sync", "dernière synchronisation", "laatste synchronisatie"),
    "coverage.size": (
        "grid (columns × rows)",
        "grille (colonnes × lignes)",
        "raster (kolommen × rijen)",
    ),
    "coverage.resolution": ("cell size (m)", "taille de cellule (m)", "celgrootte (m)"),
    "coverage.extent_native": (
        "extent (EPSG:31370)",
        "étendue (EPSG:31370)",
        "omvang (EPSG:31370)",
    ),
    "coverage.bands": ("Bands", "Bandes", "Banden"),
    "coverage.band": ("band", "bande", "band"),
    "coverage.dtype": ("data type", "type de données", "gegevenstype"),
    "coverage.nodata": ("nodata value", "valeur sans donnée", "waarde zonder gegevens"),
    "coverage.min": ("min", "min", "min"),
    "coverage.max": ("max", "max", "max"),
    "coverage.mean": ("mean", "moyenne", "gemiddelde"),
    "coverage.std": ("std. deviation", "écart type", "standaardafwijking"),
    "coverage.legend": ("Legend", "Légende", "Legende"),
    "coverage.ramp": (
        "Colour ramp: {ramp}",
        "Palette de couleurs : {ramp}",
        "Kleurverloop: {ramp}",
    ),
    "coverage.hillshade": ("with hillshading", "avec ombrage du relief", "met reliëfschaduw"),
    "coverage.own_colours": (
        "Drawn in its own colours.",
        "Dessinée dans ses propres couleurs.",
        "Getekend in de eigen kleuren.",
    ),
    "coverage.map": ("Map of the coverage", "Carte de la couverture", "Kaart van de coverage"),
    "coverage.tiles": (
        "Map tiles on {tms} (TileJSON)",
        "Tuiles de carte sur {tms} (TileJSON)",
        "Kaarttegels op {tms} (TileJSON)",
    ),
    "point.title": (
        "{coverage}: the values at a point",
        "{coverage} : les valeurs en un point",
        "{coverage}: de waarden op een punt",
    ),
    "point.value": ("value", "valeur", "waarde"),
    "point.nodata": ("no data", "pas de donnée", "geen gegevens"),
    "point.outside": (
        "The point lies off the raster: it has no values there.",
        "Le point est hors de la couche raster : elle n'y a pas de valeur.",
        "Het punt ligt buiten de rasterlaag: die heeft daar geen waarden.",
    ),
    "coverage.point": (
        "The values at its centre",
        "Les valeurs en son centre",
        "De waarden in het midden",
    ),
    # collections and a collection
    "col.id": ("id", "identifiant", "id"),
    "col.title": ("title", "titre", "titel"),
    "col.geometry": ("geometry", "géométrie", "geometrie"),
    "col.features": ("features", "objets", "objecten"),
    "col.key": ("key", "clé", "sleutel"),
    "col.version": ("version", "version", "versie"),
    "col.updated": ("last updated", "dernière mise à jour", "laatst bijgewerkt"),
    "col.extent": ("extent (CRS84)", "étendue (CRS84)", "omvang (CRS84)"),
    "col.fields": ("Fields", "Champs", "Velden"),
    "col.name": ("name", "nom", "naam"),
    "col.type": ("type", "type", "type"),
    "col.format": ("format", "format", "formaat"),
    "col.role": ("role", "rôle", "rol"),
    "col.links": ("See also", "Voir aussi", "Zie ook"),
    "col.items_html": ("The features", "Les objets", "De objecten"),
    "col.items_json": (
        "The features as GeoJSON",
        "Les objets en GeoJSON",
        "De objecten als GeoJSON",
    ),
    "col.queryables": (
        "Properties usable in a filter",
        "Propriétés utilisables dans un filtre",
        "Eigenschappen bruikbaar in een filter",
    ),
    "col.schema": (
        "The schema of the features",
        "Le schéma des objets",
        "Het schema van de objecten",
    ),
    "col.tiles": ("Vector tiles", "Tuiles vectorielles", "Vectortegels"),
    "col.quarantine": (
        "Features set aside by the last update",
        "Objets écartés par la dernière mise à jour",
        "Objecten die de laatste bijwerking terzijde legde",
    ),
    "col.changes": (
        "Changes since a date",
        "Modifications depuis une date",
        "Wijzigingen sinds een datum",
    ),
    # items
    "items.title": ("{layer}: features", "{layer} : objets", "{layer}: objecten"),
    "items.count": (
        "{returned} of {matched} features (from {first}).",
        "{returned} objets sur {matched} (à partir du {first}e).",
        "{returned} van {matched} objecten (vanaf nr. {first}).",
    ),
    "items.none": ("No features.", "Aucun objet.", "Geen objecten."),
    "items.next": ("Next page", "Page suivante", "Volgende pagina"),
    "items.prev": ("Previous page", "Page précédente", "Vorige pagina"),
    "items.no_map": (
        "(The map is drawn for features in CRS84, the default crs.)",
        "(La carte est dessinée pour des objets en CRS84, le crs par défaut.)",
        "(De kaart wordt getekend voor objecten in CRS84, de standaard-crs.)",
    ),
    "items.map": ("Map of the features", "Carte des objets", "Kaart van de objecten"),
    "form.legend": ("Filter the features", "Filtrer les objets", "De objecten filteren"),
    "form.equals": (
        "Properties equal to (empty: any value)",
        "Propriétés égales à (vide : toute valeur)",
        "Eigenschappen gelijk aan (leeg: elke waarde)",
    ),
    "form.cql": ("CQL2 filter", "Filtre CQL2", "CQL2-filter"),
    "form.cql_hint": (
        "e.g. {example}",
        "p. ex. {example}",
        "bv. {example}",
    ),
    "form.bbox": (
        "Only within the map's current view",
        "Seulement dans la vue actuelle de la carte",
        "Enkel binnen het huidige kaartbeeld",
    ),
    "form.limit": ("Features per page", "Objets par page", "Objecten per pagina"),
    "form.submit": ("Filter", "Filtrer", "Filteren"),
    "form.clear": ("Clear the filters", "Effacer les filtres", "Filters wissen"),
    "downloads.title": ("Downloads", "Téléchargements", "Downloads"),
    "downloads.all": (
        "All {count} features as {format}",
        "Les {count} objets en {format}",
        "Alle {count} objecten als {format}",
    ),
    "downloads.all_matching": (
        "All {count} matching features as {format}",
        "Les {count} objets retenus en {format}",
        "Alle {count} geselecteerde objecten als {format}",
    ),
    "downloads.too_many": (
        "{format}: the {count} features are more than one download holds ({maximum}); filter "
        "them or add limit and offset",
        "{format} : les {count} objets dépassent ce qu'un téléchargement contient ({maximum}) ; "
        "filtrez-les ou ajoutez limit et offset",
        "{format}: de {count} objecten zijn meer dan één download bevat ({maximum}); filter ze "
        "of voeg limit en offset toe",
    ),
    "downloads.page": ("This page ({format})", "Cette page ({format})", "Deze pagina ({format})"),
    "format.csv": ("CSV (WKT geometry)", "CSV (géométrie en WKT)", "CSV (WKT-geometrie)"),
    "format.gpkg": ("a GeoPackage", "GeoPackage", "GeoPackage"),
    "downloads.note": (
        "GeoJSON comes a page at a time: limit features (default {default}, at most "
        "{maximum}) from offset, with next links. To read the whole layer into geopandas "
        "(GDAL follows the links):",
        "Le GeoJSON vient page par page : limit objets (par défaut {default}, au plus "
        "{maximum}) à partir d'offset, avec des liens next. Pour lire toute la couche dans "
        "geopandas (GDAL suit les liens) :",
        "GeoJSON komt per pagina: limit objecten (standaard {default}, hoogstens {maximum}) "
        "vanaf offset, met next-links. Om de hele laag in geopandas te lezen (GDAL volgt de "
        "links):",
    ),
    # a feature
    "feature.of": ("{layer}, key {key}", "{layer}, clé {key}", "{layer}, sleutel {key}"),
    "error.title": (
        "Error {status}: {phrase}",
        "Erreur {status} : {phrase}",
        "Fout {status}: {phrase}",
    ),
    "error.400": ("the request cannot be used", "requête inutilisable", "onbruikbare aanvraag"),
    "error.404": ("not found", "introuvable", "niet gevonden"),
    "error.413": ("too large", "trop volumineux", "te groot"),
    "error.500": ("internal error", "erreur interne", "interne fout"),
    "error.503": ("unavailable for now", "indisponible pour l'instant", "tijdelijk onbeschikbaar"),
    "error.other": ("the request failed", "la requête a échoué", "de aanvraag is mislukt"),
    "error.detail": (
        "What the service says (in English):",
        "Ce que dit le service (en anglais) :",
        "Wat de dienst zegt (in het Engels):",
    ),
    "error.retry": (
        "Try again in {seconds} s.",
        "Réessayez dans {seconds} s.",
        "Probeer het over {seconds} s opnieuw.",
    ),
    "error.start": (
        "The home page lists what the service offers.",
        "La page d'accueil présente ce que le service offre.",
        "De startpagina toont wat de dienst aanbiedt.",
    ),
    "feature.history": ("Its changes", "Ses modifications", "Wijzigingen ervan"),
    "changes.of": (
        "{layer}, key {key}: changes since {since}",
        "{layer}, clé {key} : modifications depuis {since}",
        "{layer}, sleutel {key}: wijzigingen sinds {since}",
    ),
    "feature.property": ("property", "propriété", "eigenschap"),
    "feature.value": ("value", "valeur", "waarde"),
    "feature.geometry_type": ("geometry type", "type de géométrie", "geometrietype"),
    "feature.geometry": ("Geometry (CRS84)", "Géométrie (CRS84)", "Geometrie (CRS84)"),
    "feature.collection": ("The collection", "La collection", "De collectie"),
    "feature.open": ("Open", "Ouvrir", "Openen"),
    # queryables, schema
    "queryables.title": (
        "{layer}: queryable properties",
        "{layer} : propriétés interrogeables",
        "{layer}: bevraagbare eigenschappen",
    ),
    "schema.title": (
        "{layer}: schema of the features",
        "{layer} : schéma des objets",
        "{layer}: schema van de objecten",
    ),
    # tiles
    "tilesets.title": ("{what}: tilesets", "{what} : jeux de tuiles", "{what}: tegelsets"),
    "tilesets.dataset": ("All layers", "Toutes les couches", "Alle lagen"),
    "tileset.title": (
        "{what}: tiles in {tms}",
        "{what} : tuiles en {tms}",
        "{what}: tegels in {tms}",
    ),
    "tileset.template": (
        "Tile URL template",
        "Modèle d'URL des tuiles",
        "URL-sjabloon van de tegels",
    ),
    "tileset.tilejson": ("TileJSON", "TileJSON", "TileJSON"),
    "tileset.tms": ("Tile matrix set", "Grille de tuiles", "Tegelmatrixset"),
    "tileset.crs": ("CRS", "SCR", "CRS"),
    "tileset.zooms": ("zoom levels", "niveaux de zoom", "zoomniveaus"),
    "tileset.layers": ("Layers in the tiles", "Couches dans les tuiles", "Lagen in de tegels"),
    "tileset.limits": ("Tiles holding data", "Tuiles contenant des données", "Tegels met gegevens"),
    "tileset.matrix": ("zoom", "zoom", "zoom"),
    "tileset.rows": ("rows", "lignes", "rijen"),
    "tileset.cols": ("columns", "colonnes", "kolommen"),
    # a coverage's raster tiles (geoapi.coverage_tile_pages)
    "covtiles.map": (
        "The raster tiles on a map",
        "Les tuiles raster sur une carte",
        "De rastertegels op een kaart",
    ),
    "covtiles.formats": ("formats", "formats", "formaten"),
    "covtiles.style": ("style", "style", "stijl"),
    "tms.list": ("Tile matrix sets", "Grilles de tuiles", "Tegelmatrixsets"),
    "tms.cell": ("cell size (m)", "taille de cellule (m)", "celgrootte (m)"),
    "tms.scale": ("scale denominator", "dénominateur d'échelle", "schaalnoemer"),
    "tms.size": (
        "tiles (columns × rows)",
        "tuiles (colonnes × lignes)",
        "tegels (kolommen × rijen)",
    ),
    # styles
    "styles.title": ("Map styles", "Styles de carte", "Kaartstijlen"),
    "styles.stylesheet": (
        "Style (MapLibre JSON)",
        "Style (JSON MapLibre)",
        "Stijl (MapLibre-JSON)",
    ),
    "styles.default": (
        "URBIS layers, FR/NL labels",
        "Couches URBIS, étiquettes FR/NL",
        "URBIS-lagen, labels FR/NL",
    ),
    # changes and quarantine
    "changes.title": (
        "{layer}: changes since {since}",
        "{layer} : modifications depuis {since}",
        "{layer}: wijzigingen sinds {since}",
    ),
    "changes.feature": ("feature", "objet", "object"),
    "changes.op": ("change", "modification", "wijziging"),
    "changes.time": ("time", "moment", "tijdstip"),
    "changes.none": ("No changes.", "Aucune modification.", "Geen wijzigingen."),
    "op.insert": ("inserted", "ajouté", "toegevoegd"),
    "op.update": ("updated", "modifié", "gewijzigd"),
    "op.delete": ("deleted", "supprimé", "verwijderd"),
    "quarantine.title": (
        "{layer}: features set aside",
        "{layer} : objets écartés",
        "{layer}: terzijde gelegde objecten",
    ),
    "quarantine.count": (
        "{returned} of {matched} features set aside.",
        "{returned} objets écartés sur {matched}.",
        "{returned} van {matched} terzijde gelegde objecten.",
    ),
    "quarantine.reason": ("reason", "raison", "reden"),
    "quarantine.run": ("sync run", "synchronisation", "synchronisatie"),
    # geocode, lookup, within, nearest, stats
    "geocode.title": ("Find an address", "Chercher une adresse", "Een adres zoeken"),
    "geocode.query": ("Address", "Adresse", "Adres"),
    "geocode.search": ("Search", "Chercher", "Zoeken"),
    "geocode.results": (
        "{count} answers for “{q}”",
        "{count} réponses pour « {q} »",
        "{count} antwoorden voor “{q}”",
    ),
    "geocode.result": (
        "1 answer for “{q}”",
        "1 réponse pour « {q} »",
        "1 antwoord voor “{q}”",
    ),
    "match.exact": ("exact", "exacte", "exact"),
    "match.fuzzy": ("approximate", "approchée", "benaderend"),
    "match.nearest_number": ("nearest number", "numéro le plus proche", "dichtstbijzijnd nummer"),
    "match.street": ("the street", "la rue", "de straat"),
    "match.municipality": ("the municipality", "la commune", "de gemeente"),
    "match.postcode": ("the postcode", "le code postal", "de postcode"),
    "geocode.none": (
        "Nothing found for “{q}”.",
        "Rien trouvé pour « {q} ».",
        "Niets gevonden voor “{q}”.",
    ),
    "geocode.label": ("address", "adresse", "adres"),
    "geocode.score": ("score", "score", "score"),
    "geocode.match": ("match", "correspondance", "overeenkomst"),
    "lookup.title": ("What is here", "Ce qui se trouve ici", "Wat is hier"),
    "lookup.point": (
        "At the point {x}, {y} ({crs})",
        "Au point {x}, {y} ({crs})",
        "Op het punt {x}, {y} ({crs})",
    ),
    "lookup.click": (
        "Click the map to ask about another point.",
        "Cliquez sur la carte pour interroger un autre point.",
        "Klik op de kaart om een ander punt op te vragen.",
    ),
    "lookup.nothing": ("nothing here", "rien ici", "niets hier"),
    "lookup.layer": ("layer", "couche", "laag"),
    "lookup.found": ("what is here", "ce qui s'y trouve", "wat er ligt"),
    "within.title": (
        "{layer}: within {distance} m",
        "{layer} : à moins de {distance} m",
        "{layer}: binnen {distance} m",
    ),
    "nearest.title": (
        "{layer}: the {k} nearest",
        "{layer} : les {k} plus proches",
        "{layer}: de {k} dichtstbijzijnde",
    ),
    "near.point": (
        "Around the point {x}, {y} ({crs}).",
        "Autour du point {x}, {y} ({crs}).",
        "Rond het punt {x}, {y} ({crs}).",
    ),
    "near.count": (
        "{returned} of {matched} features.",
        "{returned} objets sur {matched}.",
        "{returned} van {matched} objecten.",
    ),
    "near.distance": ("distance (m)", "distance (m)", "afstand (m)"),
    "stats.title": (
        "{layer} per {by}",
        "{layer} par {by}",
        "{layer} per {by}",
    ),
    "stats.count": ("count", "nombre", "aantal"),
    "stats.area_m2": ("area (m²)", "superficie (m²)", "oppervlakte (m²)"),
    "stats.length_m": ("length (m)", "longueur (m)", "lengte (m)"),
    "stats.csv": ("This table as CSV", "Ce tableau en CSV", "Deze tabel als CSV"),
}


def text(language: str, key: str, /, **values: object) -> str:
    """The string `key` in `language`, its `{fields}` filled (plain text, not markup)."""
    english, french, dutch = _CATALOGUE[key]
    chosen = {"en": english, "fr": french, "nl": dutch}[language]
    return chosen.format(**values) if values else chosen


def catalogue() -> dict[str, tuple[str, str, str]]:
    """Every string as written, unfilled: (English, French, Dutch) by key."""
    return dict(_CATALOGUE)
