"""The read replicas' small parts: WAL positions in order, replicas named without secrets."""

from __future__ import annotations

from geoapi.read_replicas import parse_lsn, replica_name


def test_wal_positions_order_as_the_wal_does():
    positions = ["0/16B3748", "0/FFFFFFFF", "1/0", "1/A", "16/B374D848"]
    parsed = [parse_lsn(p) for p in positions]
    assert parsed == sorted(parsed) and len(set(parsed)) == len(parsed)
    assert parse_lsn("1/0") == 2**32
    # text order would put "0/FFFFFFFF" after "0/16B3748" but also "16/..." before "2/..."
    assert parse_lsn("2/0") < parse_lsn("16/0")


def test_a_replica_is_named_by_host_port_and_database_never_its_password():
    assert replica_name("postgresql://urbis_reader:s3cret@db2.example.org:5433/urbis") == (
        "db2.example.org:5433/urbis"
    )
    assert replica_name("postgresql://db3/urbis") == "db3:5432/urbis"
    assert "s3cret" not in replica_name("postgresql://u:s3cret@h/x")
