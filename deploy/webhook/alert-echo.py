#!/usr/bin/env python3
"""The webhook receiver example of alertmanager.yml: prints one line per alert of every
notification Alertmanager POSTs (status, alertname, instance, summary, runbook).
Replace it with your chat bridge or incident tool. Stdlib only.

    python3 alert-echo.py [PORT]     # default 8080
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            payload = json.loads(body)
            for a in payload.get("alerts", []):
                labels, ann = a.get("labels", {}), a.get("annotations", {})
                print(f"[{a.get('status')}] {labels.get('alertname')} {labels.get('cluster', '')}/{labels.get('instance', '')}"
                      f" severity={labels.get('severity')}: {ann.get('summary')} | runbook: {ann.get('runbook')}", flush=True)
            self.send_response(200)
        except ValueError:
            self.send_response(400)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    HTTPServer(("0.0.0.0", port), Handler).serve_forever()
