"""flightsql-dbapi and its SQLAlchemy dialect: run a query with parameters, then reflect a
table's columns and primary key.

Usage: python sqlalchemy_reflect.py [HOST:PORT]
Requires: pip install flightsql-dbapi "sqlalchemy<2" pandas
"""

import sys

import flightsql.sqlalchemy  # noqa: F401  (registers the datafusion+flightsql dialect)
import sqlalchemy
from flightsql import FlightSQLClient, connect

address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
host, port = address.rsplit(":", 1)

# The DB-API: parameters travel as a prepared statement's bound values.
client = FlightSQLClient(host=host, port=int(port), insecure=True)
cur = connect(client).cursor()
cur.execute("CREATE TABLE IF NOT EXISTS planets (id INT PRIMARY KEY, name VARCHAR, moons INT)")
cur.execute("INSERT INTO planets VALUES (1, 'Mercury', 0), (2, 'Earth', 1), (3, 'Mars', 2)")
cur.execute("SELECT name FROM planets WHERE moons >= ? ORDER BY id", (1,))
print("planets with moons:", [row[0] for row in cur.fetchall()])
client.close()

# SQLAlchemy: the "datafusion+flightsql" dialect reflects tables through Flight SQL metadata.
engine = sqlalchemy.create_engine(
    f"datafusion+flightsql://{host}:{port}?insecure=true"
    "&feature-sqlalchemy-primary-keys=on&feature-sqlalchemy-prepared-statements=on"
)
inspector = sqlalchemy.inspect(engine)
print("schemas:", inspector.get_schema_names())
print("tables in default:", inspector.get_table_names(schema="default"))
planets = sqlalchemy.Table("planets", sqlalchemy.MetaData(), autoload_with=engine, schema="default")
print("columns:", [(c.name, str(c.type), c.nullable) for c in planets.columns])
print("primary key:", [c.name for c in planets.primary_key.columns])
with engine.connect() as connection:
    rows = connection.execute(sqlalchemy.select(planets.c.name).where(planets.c.moons == 0)).fetchall()
    print("moonless:", [row[0] for row in rows])
