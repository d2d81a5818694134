"""The least a relay can cost: one tcp connection in, one out, bytes moved by the kernel with splice(2)
(through a pipe, never into user space). bench/proxy.ts runs it as the floor `vmstate proxy` is measured
against. One connection, stream direction only (no return path), which is all a paused precopy needs.

    python3 bench/splice-relay.py LISTEN_PORT TO_PORT      (on 127.0.0.1; "listening on" goes to stderr)
"""
import os
import socket
import sys

front, back = int(sys.argv[1]), int(sys.argv[2])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(('127.0.0.1', front))
server.listen(1)
print('listening on', file=sys.stderr, flush=True)
source, _ = server.accept()
dest = socket.create_connection(('127.0.0.1', back))
pipe_out, pipe_in = os.pipe()
while True:
    got = os.splice(source.fileno(), pipe_in, 1 << 20)
    if got == 0:
        break
    while got:
        got -= os.splice(pipe_out, dest.fileno(), got)
dest.shutdown(socket.SHUT_WR)
dest.recv(1)  # until the destination closes
