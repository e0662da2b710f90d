"""A service in Python (standard library only) that joins the platform through `micro sidecar`.

It answers the sidecar's health checks, and learns from them where the sidecar listens (the
`Micro-Sidecar` header); then it subscribes to topic `news` over the sidecar's WebSocket, and
calls other services through the sidecar's HTTP address.

    POST /greet   {"name": N}  -> {"msg": "Hello N from Python"}
    POST /relay   {"name": N}  -> helloworld's answer, called through the sidecar
    POST /news    {}           -> {"messages": [every message of topic news so far]}
    POST /fail    {}           -> 409, "already there"

PORT picks the port (default: any free one); it prints `app listening on PORT`.
"""

import base64
import json
import os
import socket
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

state = {"sidecar": None, "news": []}
lock = threading.Lock()


def call(path, body):
    """POSTs JSON to the sidecar's HTTP address."""
    request = urllib.request.Request(
        state["sidecar"] + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def subscribe(topic):
    """A WebSocket client, as small as the standard library allows."""
    address = state["sidecar"][len("http://"):]
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /subscribe/{topic} HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    stream = sock.makefile("rb")
    status = stream.readline()
    if b" 101 " not in status:
        print("subscribe refused:", status, flush=True)
        return
    while stream.readline() not in (b"\r\n", b""):
        pass
    print("subscribed to", topic, flush=True)
    while True:
        head = stream.read(2)
        if len(head) < 2:
            return
        opcode, size = head[0] & 0x0F, head[1] & 0x7F
        if size == 126:
            size = int.from_bytes(stream.read(2), "big")
        elif size == 127:
            size = int.from_bytes(stream.read(8), "big")
        data = stream.read(size)
        if opcode == 8:
            return
        if opcode == 1:
            with lock:
                state["news"].append(data.decode())


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            sidecar = self.headers.get("Micro-Sidecar")
            with lock:
                first = sidecar and state["sidecar"] is None
                if first:
                    state["sidecar"] = sidecar
            if first:
                threading.Thread(target=subscribe, args=("news",), daemon=True).start()
            return self.answer(200, {"status": "ok"})
        self.answer(404, {"error": "no such page"})

    def do_POST(self):
        size = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(size) or b"{}")
        if self.path == "/greet":
            return self.answer(200, {"msg": f"Hello {request.get('name', 'stranger')} from Python"})
        if self.path == "/relay":
            return self.answer(200, call("/helloworld/call", {"name": request.get("name", "")}))
        if self.path == "/news":
            with lock:
                return self.answer(200, {"messages": list(state["news"])})
        if self.path == "/fail":
            return self.answer(409, "already there")
        self.answer(404, {"error": "no such endpoint"})


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "0"))), Handler)
print(f"app listening on {server.server_address[1]}", flush=True)
server.serve_forever()
