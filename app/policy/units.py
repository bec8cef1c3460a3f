"""Time in Tact's core: integers, milliseconds since the Unix epoch, UTC."""

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
