"""Property indexes a layer's configuration asks for (`indexes`), kept by the sync."""

from __future__ import annotations

import sqlalchemy as sa

from tests.db.test_reconcile import Layer, legacy_municipalities, rows, scalar


def configure(layer: Layer, indexes: list[str]) -> None:
    text = layer.config_path.read_text().split("    indexes:")[0]
    layer.config_path.write_text(text + f"    indexes: [{', '.join(indexes)}]\n")


def all_indexes(engine: sa.Engine) -> dict[str, str]:
    return dict(
        rows(
            engine,
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = "
            "'urbis' AND tablename = 'muni' "
            "AND starts_with(indexname, 'muni__by_')",
        )
    )


def property_indexes(engine: sa.Engine) -> dict[str, str]:
    """The per-property ones (each carries the key); `walk_index` gives the key's one."""
    found = all_indexes(engine)
    for name, definition in found.items():
        if not name.startswith("muni__by_key+"):
            assert definition.endswith('INCLUDE ("NAT_CODE")'), definition
    return {n: d for n, d in found.items() if not n.startswith("muni__by_key+")}


def walk_index(engine: sa.Engine) -> str | None:
    """The key index carrying the listed properties (None without any)."""
    walks = [d for n, d in all_indexes(engine).items() if n.startswith("muni__by_key+")]
    assert len(walks) <= 1
    return walks[0] if walks else None


def plan(engine: sa.Engine, where: str) -> str:
    with engine.connect() as conn:
        conn.execute(sa.text("SET enable_seqscan = off"))  # 19 rows: the planner would scan
        lines = conn.execute(sa.text(f"EXPLAIN SELECT count(*) FROM urbis.muni WHERE {where}"))
        return "\n".join(r[0] for r in lines)


def test_listed_properties_are_indexed_for_comparisons_and_like_prefixes(engine, tmp_path):
    frame = legacy_municipalities(tmp_path)
    layer = Layer(tmp_path, frame, "NAT_CODE")
    configure(layer, ["NAME_FRE", "AREA"])
    layer.sync(engine)  # a first load: built with the key and GiST indexes
    indexes = property_indexes(engine)
    assert sorted(indexes) == ["muni__by_AREA", "muni__by_NAME_FRE"]
    assert "text_pattern_ops" in indexes["muni__by_NAME_FRE"]
    assert "text_pattern_ops" not in indexes["muni__by_AREA"]
    assert walk_index(engine).endswith('("NAT_CODE") INCLUDE ("NAME_FRE", "AREA")')
    assert "muni__by_NAME_FRE" in plan(engine, "\"NAME_FRE\" LIKE 'Saint%'")
    assert "muni__by_AREA" in plan(engine, '"AREA" > 1000000')
    with engine.connect() as conn:
        conn.execute(sa.text("SET enable_seqscan = off"))
        found = conn.execute(
            sa.text('SELECT "NAT_CODE" FROM urbis.muni WHERE "NAME_FRE" LIKE \'Saint%\'')
        ).scalars()
        assert sorted(found) == sorted(frame[frame.NAME_FRE.str.startswith("Saint")].NAT_CODE)


def test_the_list_is_followed_when_it_changes_and_through_a_rebuild(engine, tmp_path):
    frame = legacy_municipalities(tmp_path)
    layer = Layer(tmp_path, frame, "NAT_CODE")
    layer.sync(engine)
    assert property_indexes(engine) == {} and walk_index(engine) is None

    configure(layer, ["NAME_DUT", "AREA"])
    report = layer.sync(engine)  # the data did not change: the indexes still follow
    assert report.version == 1
    assert sorted(property_indexes(engine)) == ["muni__by_AREA", "muni__by_NAME_DUT"]

    configure(layer, ["AREA"])
    layer.sync(engine)
    assert sorted(property_indexes(engine)) == ["muni__by_AREA"]
    assert walk_index(engine).endswith('("NAT_CODE") INCLUDE ("AREA")')

    layer.write(frame.assign(POPULATION=1000))  # schema drift: a new table is swapped in
    configure(layer, ["AREA", "POPULATION"])
    report = layer.sync(engine)
    assert report.drift == "added POPULATION (bigint)"
    assert sorted(property_indexes(engine)) == ["muni__by_AREA", "muni__by_POPULATION"]
    assert walk_index(engine).endswith('("NAT_CODE") INCLUDE ("AREA", "POPULATION")')

    configure(layer, [])
    layer.sync(engine)
    assert all_indexes(engine) == {}


def test_a_property_the_source_lacks_fails_the_run_and_keeps_the_layer(engine, tmp_path):
    layer = Layer(tmp_path, legacy_municipalities(tmp_path), "NAT_CODE")
    configure(layer, ["AREA"])
    layer.sync(engine)
    configure(layer, ["AREA", "SURFACE"])
    report = layer.sync_report(engine)
    assert report.status == "failed"
    assert "indexes name 'SURFACE', which the source does not have" in report.error
    assert scalar(engine, "SELECT count(*) FROM urbis.muni") == 19
    assert sorted(property_indexes(engine)) == ["muni__by_AREA"]


def test_a_first_load_with_a_missing_property_stores_nothing(engine, tmp_path):
    layer = Layer(tmp_path, legacy_municipalities(tmp_path), "NAT_CODE")
    configure(layer, ["SURFACE"])
    report = layer.sync_report(engine)
    assert report.status == "failed"
    assert "SURFACE" in report.error
    assert scalar(engine, "SELECT to_regclass('urbis.muni')") is None


def test_an_index_made_before_it_carried_the_key_is_rebuilt(engine, tmp_path):
    layer = Layer(tmp_path, legacy_municipalities(tmp_path), "NAT_CODE")
    layer.sync(engine)
    with engine.begin() as conn:
        conn.execute(sa.text('CREATE INDEX "muni__by_AREA" ON urbis.muni ("AREA")'))
    configure(layer, ["AREA"])
    layer.sync(engine)
    assert property_indexes(engine)["muni__by_AREA"].endswith('INCLUDE ("NAT_CODE")')
