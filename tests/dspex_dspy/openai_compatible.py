"""A small OpenAI-compatible chat-completions server on loopback, standing in for a real LM provider.

It answers in DSPy's ChatAdapter format (the toy task's answers), records every request
body and header, and refuses the first `fail_first` requests with 503 so the client's
retries run. Runs in a thread of the test process; `with OpenAICompatibleServer() as s`.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dspex_dspy import TOY_QA

_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]")
ANSWERS = dict(TOY_QA)


def _reply(messages: list[dict[str, Any]]) -> str:
    last = messages[-1]["content"]
    last = last if isinstance(last, str) else "".join(part.get("text", "") for part in last)
    question = re.search(r"\[\[ ## \w+ ## \]\]\n(.*?)(?:\n\n|\Z)", last, re.S)
    answer = ANSWERS.get(question.group(1).strip() if question else "", "I do not know")
    respond = last[last.find("Respond with") :]
    fields = [f for f in _FIELD.findall(respond) if f != "completed"] or ["answer"]
    body = "".join(f"[[ ## {f} ## ]]\n{answer if f == 'answer' else 'From memory.'}\n\n" for f in fields)
    return body + "[[ ## completed ## ]]"


class OpenAICompatibleServer:
    def __init__(self, fail_first: int = 1) -> None:
        self.requests: list[dict[str, Any]] = []
        self.refused = 0
        self._fail_first = fail_first
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    refuse = server.refused < server._fail_first
                    if refuse:
                        server.refused += 1
                    else:
                        server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
                if refuse:
                    self._send(503, {"error": {"message": "busy, try again", "type": "server_error"}})
                    return
                content = _reply(body["messages"])
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{len(server.requests)}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    },
                )

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, name="openai-compatible", daemon=True)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._http.server_port}/v1"

    def __enter__(self) -> OpenAICompatibleServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(10)
