# A pod's process for the fake's tests: serves GET /readyz on 127.0.0.1:<port>,
# 200 unless <state>/<pod>.notready exists; with "ignore-sigterm" it outlives SIGTERM.
import http.server
import os
import signal
import sys

port, state, pod = int(sys.argv[1]), sys.argv[2], sys.argv[3]
if "ignore-sigterm" in sys.argv[4:]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class Probe(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ready = not os.path.exists(os.path.join(state, pod + ".notready"))
        self.send_response(200 if ready and self.path == "/readyz" else 503)
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", port), Probe).serve_forever()
