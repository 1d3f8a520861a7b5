#!/usr/bin/env python3
"""A TCP proxy in front of a real server, for outage tests and benches.

It relays 127.0.0.1:<port it prints> to 127.0.0.1:TARGET_PORT. SIGUSR1 takes the
"server" down: open connections are cut and new ones refused (the listener is
closed). SIGUSR2 brings it back on the same port. --delay-ms adds latency to
every chunk relayed to the server: a slow network, made on purpose.

    python3 tests/python/tcp_proxy.py TARGET_PORT [--delay-ms N]
"""
import argparse
import signal
import socket
import threading
import time

state = {"up": True, "listener": None, "conns": set()}
lock = threading.Lock()


def pipe(src, dst, delay):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if delay:
                time.sleep(delay)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client, target, delay):
    try:
        upstream = socket.create_connection(("127.0.0.1", target))
    except OSError:
        client.close()
        return
    with lock:
        state["conns"].update([client, upstream])
    threading.Thread(target=pipe, args=(client, upstream, delay), daemon=True).start()
    pipe(upstream, client, 0)
    with lock:
        state["conns"].difference_update([client, upstream])


def listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(256)
    return s


def down(*_):
    with lock:
        state["up"] = False
        if state["listener"]:
            state["listener"].close()
        for c in list(state["conns"]):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def up(*_):
    with lock:
        state["up"] = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("target", type=int)
    ap.add_argument("--delay-ms", type=float, default=0)
    args = ap.parse_args()
    delay = args.delay_ms / 1000
    signal.signal(signal.SIGUSR1, down)
    signal.signal(signal.SIGUSR2, up)
    listener = listen(0)
    port = listener.getsockname()[1]
    state["listener"] = listener
    print(port, flush=True)
    while True:
        if not state["up"]:
            time.sleep(0.05)
            continue
        if state["listener"] is None or state["listener"].fileno() == -1:
            state["listener"] = listen(port)
        try:
            client, _ = state["listener"].accept()
        except OSError:
            continue
        threading.Thread(target=serve, args=(client, args.target, delay), daemon=True).start()


if __name__ == "__main__":
    main()
