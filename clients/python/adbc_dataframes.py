"""ADBC Flight SQL with data frames: bulk ingest from pandas and polars, parameters,
executemany, a transaction, and the catalog through adbc_get_objects.

Usage: python adbc_dataframes.py [grpc://127.0.0.1:50051]
Requires: pip install adbc-driver-flightsql adbc-driver-manager pyarrow pandas polars
"""

import sys

import adbc_driver_flightsql.dbapi as flightsql
import pandas as pd
import polars as pl
import pyarrow as pa

uri = sys.argv[1] if len(sys.argv) > 1 else "grpc://127.0.0.1:50051"

with flightsql.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
    cur.execute("CREATE DATABASE IF NOT EXISTS frames")

    # Bulk ingest: create the table from a pandas frame, then append a polars frame.
    cities = pd.DataFrame({"id": [1, 2, 3], "name": ["Oslo", "Lima", "Pune"], "pop": [0.7, 10.0, 7.4]})
    cur.adbc_ingest("cities", pa.Table.from_pandas(cities, preserve_index=False),
                    mode="replace", db_schema_name="frames")
    more = pl.DataFrame({"id": [4], "name": ["Kyiv"], "pop": [2.9]})
    cur.adbc_ingest("cities", more.to_arrow(), mode="append", db_schema_name="frames")

    # Parameters: ? placeholders, bound per execution; executemany runs as one commit.
    cur.execute("SELECT name FROM frames.cities WHERE pop > ? ORDER BY name", (5.0,))
    print("big cities:", [row[0] for row in cur.fetchall()])
    cur.executemany("UPDATE frames.cities SET pop = ? WHERE id = ?", [(0.8, 1), (10.1, 2)])

    # Results come back as Arrow, pandas or polars.
    cur.execute("SELECT * FROM frames.cities ORDER BY id")
    print(pl.from_arrow(cur.fetch_arrow_table()))
    cur.execute("SELECT count(*) AS n FROM frames.cities")
    print(cur.fetch_df())

    # The catalog: databases are schemas of the catalog "minidb".
    objects = conn.adbc_get_objects(depth="tables", db_schema_filter="frames").read_all().to_pylist()
    for catalog in objects:
        for schema in catalog["catalog_db_schemas"]:
            names = [t["table_name"] for t in schema["db_schema_tables"]]
            print(f"{catalog['catalog_name']}.{schema['db_schema_name']}: {names}")

# A transaction: nothing is visible to others until commit.
with flightsql.connect(uri, autocommit=False) as conn, conn.cursor() as cur:
    cur.execute("DELETE FROM frames.cities WHERE id = 4")
    conn.rollback()
with flightsql.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
    cur.execute("SELECT count(*) FROM frames.cities")
    print("after rollback:", cur.fetchone()[0], "cities")
