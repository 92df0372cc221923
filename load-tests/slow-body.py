#!/usr/bin/env python3
"""Slow-body attack on a running gateway, while wrk measures redirects.

Opens N connections that POST /api/v1/conversions with a valid key and
`Transfer-Encoding: chunked`, sending one byte every 4 s, for S seconds; the
gateway should answer each with 408 after --body-timeout-ms and keep serving
redirects meanwhile. 127.0.0.1 only; bounded (N connections, S seconds).

    load-tests/slow-body.py PORT KEY N SECONDS &
    wrk -t1 -c16 -d8s --latency http://127.0.0.1:PORT/CODE
"""
import socket
import sys
import time

port, key, n, secs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(
        (
            f"POST /api/v1/conversions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
    )
    socks.append(s)
end = time.time() + secs
answered = 0
while time.time() < end and socks:
    alive = []
    for s in socks:
        try:
            s.sendall(b"1\r\n{\r\n")
            alive.append(s)
        except OSError:
            answered += 1
    socks = alive
    time.sleep(4)
print(f"slow-body: {n} connections, {answered} closed by the gateway within {secs:.0f} s")
