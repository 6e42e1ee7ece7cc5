import pickle

import pytest

from tests.support.layers import catalog_entry
from urbis_core.catalog import ColumnInfo, LayerEntry
from urbis_core.errors import InvalidParameter, UnknownCollection
from urbis_core.layer_ids import layers_by_ids, parse_layer_ids


def layer(layer_id: str) -> LayerEntry:
    return catalog_entry(layer_id, (ColumnInfo("ID", "integer"),), geometry_type="Point")


CATALOG = [layer("addresses"), layer("buildings"), layer("municipalities")]


@pytest.mark.parametrize("text", [None, "", "  "])
def test_no_ids_is_every_layer(text):
    assert parse_layer_ids(text) == ()
    assert [x.id for x in layers_by_ids(parse_layer_ids(text), CATALOG)] == [
        "addresses",
        "buildings",
        "municipalities",
    ]


def test_ids_in_their_order_each_once():
    ids = parse_layer_ids(" municipalities, addresses,municipalities")
    assert ids == ("municipalities", "addresses")
    assert [x.id for x in layers_by_ids(ids, CATALOG)] == ["municipalities", "addresses"]


@pytest.mark.parametrize("text", ["addresses,,municipalities", "addresses,", ",", " , "])
def test_an_empty_id_is_refused_with_the_parameter_named(text):
    with pytest.raises(InvalidParameter, match="'--collections'.*empty id"):
        parse_layer_ids(text, "--collections")


def test_unknown_ids_are_named_with_the_known_ones():
    with pytest.raises(UnknownCollection) as err:
        layers_by_ids(("addresses", "nope", "gone"), CATALOG)
    assert err.value.parameter == "collections" and err.value.unknown == ("nope", "gone")
    assert "no collection 'nope', 'gone'" in str(err.value)
    assert "addresses, buildings, municipalities" in str(err.value)
    assert isinstance(err.value, InvalidParameter)  # the command line refuses it as an option
    copy = pickle.loads(pickle.dumps(err.value))  # raised in a worker process, it comes back
    assert str(copy) == str(err.value) and copy.unknown == err.value.unknown


def test_nothing_synced_is_said():
    with pytest.raises(UnknownCollection, match="none is synced yet"):
        layers_by_ids(("addresses",), [])
