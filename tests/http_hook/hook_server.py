"""A real HTTP service for the HTTP hook tests: it decides logins and topic access by name and
counts the questions it was asked. It binds 127.0.0.1 on a free port, prints "PORT <n>" and
serves until it is killed.

Logins (POST /login): usernames "good" and "other" with password "pw" are allowed; "granted" is allowed with
ACL rules in the answer; "ignored" gets {"result": "ignore"}; "broken" gets a 500; "slow"
waits 5 s; anyone else is denied. Topics (POST /acl): a topic or filter starting with
"allowed/" is allowed, "ignored/" ignored, "broken/" answered with 500, "slow/" after 5 s,
anything else denied; a "flaky/" topic fails (503) the first time it is asked about and is
allowed afterwards; every topic is denied to "other". GET /count?topic=T says how many times T was asked about.
"""

import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTS = {}
LOCK = threading.Lock()


class Hook(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args):
        pass

    def answer(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        topic = query.get("topic", [""])[0]
        with LOCK:
            count = COUNTS.get(topic, 0)
        self.answer(200, {"count": count})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/login":
            self.login(request)
        elif self.path == "/acl":
            self.acl(request)
        else:
            self.answer(404)

    def login(self, request):
        user = request.get("username")
        if user in ("good", "other") and request.get("password") == "pw":
            self.answer(200, {"result": "allow"})
        elif user == "granted":
            rules = [{"permission": "allow", "action": "all", "topic": "granted/${clientid}/#"}]
            self.answer(200, {"result": "allow", "acl": rules})
        elif user == "ignored":
            self.answer(200, {"result": "ignore"})
        elif user == "broken":
            self.answer(500, {"error": "down"})
        elif user == "slow":
            time.sleep(5)
            self.answer(200, {"result": "allow"})
        else:
            self.answer(200, {"result": "deny"})

    def acl(self, request):
        topic = request.get("topic", "")
        with LOCK:
            COUNTS[topic] = COUNTS.get(topic, 0) + 1
            asked = COUNTS[topic]
        if request.get("username") == "other":
            self.answer(200, {"result": "deny"})
        elif topic.startswith("flaky/") and asked == 1:
            self.answer(503)
        elif topic.startswith("flaky/"):
            self.answer(200, {"result": "allow"})
        elif topic.startswith("allowed/"):
            self.answer(200, {"result": "allow"})
        elif topic.startswith("ignored/"):
            self.answer(200, {"result": "ignore"})
        elif topic.startswith("broken/"):
            self.answer(500)
        elif topic.startswith("slow/"):
            time.sleep(5)
            self.answer(200, {"result": "allow"})
        else:
            self.answer(200, {"result": "deny"})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
