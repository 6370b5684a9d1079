"""Create a database and a table, insert rows and query them through ADBC Flight SQL.

Usage: python adbc_quickstart.py [grpc://127.0.0.1:50051]
Requires: pip install adbc-driver-flightsql adbc-driver-manager pyarrow
"""

import sys

import adbc_driver_flightsql.dbapi as flightsql

uri = sys.argv[1] if len(sys.argv) > 1 else "grpc://127.0.0.1:50051"
# The cookie middleware keeps the database chosen by USE across statements. DBAPI connections
# start in manual-commit mode; autocommit=True makes each statement commit on its own.
cookies = {"adbc.flight.sql.rpc.with_cookie_middleware": "true"}
with flightsql.connect(uri, db_kwargs=cookies, autocommit=True) as conn:
    cur = conn.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS quickstart")
    cur.execute("USE quickstart")
    cur.execute("CREATE TABLE IF NOT EXISTS users (id INT PRIMARY KEY, name VARCHAR, age INT)")
    cur.execute("INSERT INTO users VALUES (1, 'Alice', 25), (2, 'Bob', 30)")
    cur.execute("SELECT name, age FROM users WHERE age > 20 ORDER BY id")
    print(cur.fetch_arrow_table())
