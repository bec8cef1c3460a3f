"""Bytes in and out: Avro in the Confluent wire format for topics, msgpack for table state."""
