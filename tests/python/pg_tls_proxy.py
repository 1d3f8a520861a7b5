#!/usr/bin/env python3
"""A TLS front for a PostgreSQL server built without TLS, for the sink's TLS test.

It speaks PostgreSQL's own TLS start (the client sends SSLRequest, the server
answers 'S', then the TLS handshake), then relays the decrypted stream to the
real server. A client that does not ask for TLS is turned away, so a run that
gets through it used TLS. Prints the port it listens on, then one line per TLS
session.

    python3 tests/python/pg_tls_proxy.py CERT KEY PG_PORT
"""
import socket
import ssl
import struct
import sys
import threading

from tcp_proxy import pipe  # the same relay, without added latency

SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def serve(client, context, pg_port):
    try:
        if client.recv(8, socket.MSG_WAITALL) != SSL_REQUEST:
            client.close()  # plain text: refused
            return
        client.sendall(b"S")
        tls = context.wrap_socket(client, server_side=True)
    except (OSError, ssl.SSLError):
        client.close()  # the client gave up, e.g. it did not trust the certificate
        return
    print("tls session", flush=True)
    upstream = socket.create_connection(("127.0.0.1", pg_port))
    threading.Thread(target=pipe, args=(tls, upstream, 0), daemon=True).start()
    pipe(upstream, tls, 0)


def main():
    cert, key, pg_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(listener.getsockname()[1], flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client, context, pg_port), daemon=True).start()


if __name__ == "__main__":
    main()
