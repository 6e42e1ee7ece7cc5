import pytest

from geoapi.params import parse_bbox, reject_unknown
from urbis_core.errors import InvalidParameter


def test_bbox_four_and_six_numbers():
    assert parse_bbox("4.3,50.8,4.4,50.9") == (4.3, 50.8, 4.4, 50.9)
    assert parse_bbox("4.3,50.8,0,4.4,50.9,100") == (4.3, 50.8, 4.4, 50.9)
    assert parse_bbox(None) is None


@pytest.mark.parametrize(
    "raw, words",
    [
        ("1,2,3", "4 or 6"),
        ("a,b,c,d", "not a list of numbers"),
        ("nan,1,2,3", "finite"),
        ("4.4,50.8,4.3,50.9", "min <= max"),
        ("200,50,201,51", "longitudes"),
        ("4,95,5,96", "latitudes"),
    ],
)
def test_bad_bbox_says_why(raw, words):
    with pytest.raises(InvalidParameter) as err:
        parse_bbox(raw)
    assert "bbox" in str(err.value) and words in str(err.value)


def test_unknown_parameter_is_named():
    reject_unknown(["limit"], {"limit", "f"})
    with pytest.raises(InvalidParameter, match="'colour'"):
        reject_unknown(["limit", "colour"], {"limit", "f"})
