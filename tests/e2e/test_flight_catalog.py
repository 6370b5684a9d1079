"""Flight SQL catalog RPCs through ADBC's metadata calls and plain pyarrow.flight: one catalog
`minidb`, a schema per database (plus `sys`), tables with their Arrow schemas, primary keys."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as flight

from test_flight_pyarrow import _any, _field_bytes


def flight_read(server, command: bytes) -> pa.Table:
    client = flight.FlightClient(server.flight_uri)
    try:
        info = client.get_flight_info(flight.FlightDescriptor.for_command(command))
        table = client.do_get(info.endpoints[0].ticket).read_all()
        assert table.schema == info.schema
        return table
    finally:
        client.close()


def test_adbc_get_objects_lists_databases_tables_and_columns(server, conn):
    cur = conn.cursor()
    cur.execute("CREATE DATABASE shop")
    cur.execute("CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR NOT NULL, price DECIMAL(10, 2))")
    cur.execute("CREATE TABLE t (d DATE, ts TIMESTAMP)")
    cur.close()

    objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    assert [c["catalog_name"] for c in objects] == ["minidb"]
    schemas = {s["db_schema_name"]: s for s in objects[0]["catalog_db_schemas"]}
    assert set(schemas) == {"default", "shop", "sys"}
    items = {t["table_name"]: t for t in schemas["shop"]["db_schema_tables"]}["items"]
    assert items["table_type"] == "TABLE"
    columns = [(c["column_name"], c["ordinal_position"]) for c in items["table_columns"]]
    assert columns == [("id", 1), ("name", 2), ("price", 3)]
    system = {t["table_name"]: t["table_type"] for t in schemas["sys"]["db_schema_tables"]}
    assert system["table_files"] == "SYSTEM TABLE" and "columns_metadata" in system

    # Filters: a schema pattern, a table pattern, a catalog that does not exist.
    only = conn.adbc_get_objects(depth="tables", db_schema_filter="sh%").read_all().to_pylist()
    assert [s["db_schema_name"] for s in only[0]["catalog_db_schemas"]] == ["shop"]
    named = conn.adbc_get_objects(depth="tables", table_name_filter="it_m%").read_all().to_pylist()
    found = [t["table_name"] for s in named[0]["catalog_db_schemas"] for t in s["db_schema_tables"] or []]
    assert found == ["items"]
    assert conn.adbc_get_objects(depth="catalogs", catalog_filter="other").read_all().num_rows == 0

    assert conn.adbc_get_table_schema("items", db_schema_filter="shop") == pa.schema(
        [
            pa.field("id", pa.int32(), nullable=False),
            pa.field("name", pa.string(), nullable=False),
            pa.field("price", pa.decimal128(10, 2)),
        ]
    )
    assert conn.adbc_get_table_schema("t", db_schema_filter="default").types == [
        pa.date32(),
        pa.timestamp("us"),
    ]
    assert sorted(conn.adbc_get_table_types()) == ["SYSTEM TABLE", "TABLE", "VIEW"]


def test_raw_catalog_commands_answer_in_the_specified_schemas(server, text):
    text.ok("CREATE TABLE orders (region VARCHAR, id BIGINT, v INT, PRIMARY KEY (region, id));")
    catalogs = flight_read(server, _any("CommandGetCatalogs", b""))
    assert catalogs.schema == pa.schema([pa.field("catalog_name", pa.string(), nullable=False)])
    assert catalogs.column(0).to_pylist() == ["minidb"]

    # include_schema (field 5) = true: table_schema holds the IPC-encoded Arrow schema.
    tables = flight_read(server, _any("CommandGetTables", _field_bytes(2, b"default") + b"\x28\x01"))
    assert tables.schema == pa.schema(
        [
            pa.field("catalog_name", pa.string()),
            pa.field("db_schema_name", pa.string()),
            pa.field("table_name", pa.string(), nullable=False),
            pa.field("table_type", pa.string(), nullable=False),
            pa.field("table_schema", pa.binary(), nullable=False),
        ]
    )
    row = tables.to_pylist()[0]
    assert (row["catalog_name"], row["db_schema_name"], row["table_name"]) == ("minidb", "default", "orders")
    assert pa.ipc.read_schema(pa.py_buffer(row["table_schema"])).names == ["region", "id", "v"]

    keys = flight_read(
        server,
        _any("CommandGetPrimaryKeys", _field_bytes(2, b"default") + _field_bytes(3, b"orders")),
    )
    assert [(r["column_name"], r["key_sequence"], r["key_name"]) for r in keys.to_pylist()] == [
        ("region", 1, "orders_pkey"),
        ("id", 2, "orders_pkey"),
    ]
    text.ok("CREATE TABLE nokey (a INT);")
    none = flight_read(server, _any("CommandGetPrimaryKeys", _field_bytes(3, b"nokey")))
    assert none.num_rows == 0 and none.schema.field("key_sequence").type == pa.int32()


def test_adbc_get_info_reports_the_server(conn):
    info = conn.adbc_get_info()
    assert info["vendor_name"] == "MiniDB"
    assert info["vendor_arrow_version"] == "1.3"
    assert info["vendor_version"].count(".") == 2
    assert info["driver_name"].startswith("ADBC Flight SQL Driver")
