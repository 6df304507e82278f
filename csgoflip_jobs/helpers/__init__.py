"""Redis helpers shared by the web app and the tasks: sessions, cache, locks, rate
limits, pub/sub, monitoring, connections."""
