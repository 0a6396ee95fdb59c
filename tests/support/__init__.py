"""Test support: real server processes on free ports, and WebSocket clients to drive them."""
