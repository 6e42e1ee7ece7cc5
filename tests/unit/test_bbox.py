import pytest

from geoapi.crs import SUPPORTED
from urbis_core.bbox import parse_bbox
from urbis_core.errors import InvalidParameter


def test_bbox_four_and_six_numbers():
    assert parse_bbox("4.3,50.8,4.4,50.9") == (4.3, 50.8, 4.4, 50.9)
    assert parse_bbox("4.3,50.8,0,4.4,50.9,100") == (4.3, 50.8, 4.4, 50.9)
    assert parse_bbox(None) is None


def test_bbox_in_a_crs_latitude_first_or_projected():
    epsg4326 = SUPPORTED["http://www.opengis.net/def/crs/EPSG/0/4326"]
    assert parse_bbox("50.8,4.3,50.9,4.4", epsg4326) == (4.3, 50.8, 4.4, 50.9)
    lambert = SUPPORTED["http://www.opengis.net/def/crs/EPSG/0/31370"]
    assert parse_bbox("147900,169300,148100,169500", lambert) == (147900, 169300, 148100, 169500)


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


def test_the_parameter_named_is_the_callers():
    with pytest.raises(InvalidParameter, match="'--bbox'.*min <= max"):
        parse_bbox("4.4,50.8,4.3,50.9", parameter="--bbox")
