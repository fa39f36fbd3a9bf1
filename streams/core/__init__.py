"""The stream's logic without its wires: what a record is and which partition it goes to
(``schema``, ``routing``), what the models make of an asset's records (``pipeline``, ``fleet``),
what an operator is told (``signals``, ``alerts``), what InfluxDB is sent (``points``,
``line_protocol``), which offsets may be committed (``offsets``), how a batch is cut
(``batch_parts``, ``time_budget``).

Nothing here opens a socket, reads a file, or awaits: no broker, HTTP or event-loop code, only
values in and values out, so each part is tested without servers. The rest of ``streams`` wires
it to Kafka, InfluxDB and HTTP; settings come from ``streams.settings``, where every default
lives. ``tests/streams/test_core_layer.py`` holds the package to that.
"""
