"""Flight SQL with nothing but pyarrow.flight: the commands are protobuf messages wrapped in
google.protobuf.Any, encoded here by hand (no other package needed).

The ticket of a query is whatever GetFlightInfo returns in its endpoint; pass it back to DoGet
unchanged. Raw SQL bytes are not a command: a descriptor or ticket must hold an Any message.

Usage: python pyarrow_flight.py [grpc://127.0.0.1:50051]
Requires: pip install pyarrow
"""

import sys

import pyarrow as pa
import pyarrow.flight as flight

PACKAGE = "type.googleapis.com/arrow.flight.protocol.sql."


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    key, length, out = (number << 3) | 2, len(payload), bytearray()
    for value in (key, length):
        while value > 0x7F:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out) + payload


def command(message: str, sql: str) -> bytes:
    """Any{<message>{query = sql}}: CommandStatementQuery or CommandStatementUpdate."""
    return field(1, (PACKAGE + message).encode()) + field(2, field(1, sql.encode()))


uri = sys.argv[1] if len(sys.argv) > 1 else "grpc://127.0.0.1:50051"
client = flight.FlightClient(uri)

# Statements that change data go through DoPut(CommandStatementUpdate); the answer carries
# DoPutUpdateResult{record_count}.
for sql in ("CREATE TABLE IF NOT EXISTS notes (id INT, body VARCHAR)",
            "INSERT INTO notes VALUES (1, 'plain pyarrow'), (2, 'works')"):
    descriptor = flight.FlightDescriptor.for_command(command("CommandStatementUpdate", sql))
    writer, reader = client.do_put(descriptor, pa.schema([]))
    writer.done_writing()
    reader.read()
    writer.close()

# Queries: GetFlightInfo(CommandStatementQuery) plans the query; DoGet on the endpoint's
# ticket streams the rows.
info = client.get_flight_info(
    flight.FlightDescriptor.for_command(command("CommandStatementQuery", "SELECT * FROM notes ORDER BY id"))
)
print("schema:", info.schema)
for endpoint in info.endpoints:
    print(client.do_get(endpoint.ticket).read_all().to_pylist())
client.close()
