"""`hubbub bench`: a fan-out load generator for any WebSocket server that relays text.

One publisher sends fixed-size text frames at a fixed rate; N subscribers, spread over
worker processes, receive every relayed frame and measure delivery ratio and latency. See
`docs/performance.md` for how to run it and what the numbers mean. `hubbub bench-acks`
(`acks.py`) measures acknowledged publishes instead.

The package is the generator; the repository's `benchmarks/` folder holds what it is run
against and with (baseline servers, the measurement scripts behind the published tables).
"""
