"""Test support: real server processes, free ports, private redis-server."""
