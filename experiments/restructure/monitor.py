"""MONITOR on a Redis server, written raw to a file until the server closes the link or the process is killed.

redis-cli's monitor stops reading once a command line is very long (the profile's megabyte values), so the
layer caches written later were never seen; this reads the stream itself, unbuffered."""
import socket
import sys

port, out = int(sys.argv[1]), sys.argv[2]
link = socket.create_connection(("127.0.0.1", port))
link.sendall(b"MONITOR\r\n")
with open(out, "wb", buffering=0) as f:
    while True:
        chunk = link.recv(1 << 20)
        if not chunk:
            break
        f.write(chunk)
