"""HttpPlanner against a real OpenAI-compatible HTTP server started in the test: good answers,
timeouts, server errors, malformed and invalid answers, and what the requests carry."""

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from kinema.policies.brain.http_backend import HttpPlanner, HttpPlannerConfig
from kinema.policies.brain.planner import BrainError, PlanHistory
from kinema.policies.brain.schema import VERDICT_SCHEMA, plan_schema
from kinema.policies.brain.types import BrainObservation, Verdict

OBJECTS = ("red cube",)
GOOD_PLAN = json.dumps(
    {
        "subtasks": [
            {"skill": "pick", "arm": "right", "object": "red cube", "target": None},
            {"skill": "handover", "arm": "left", "object": "red cube", "target": None},
        ]
    }
)
ABSENT_OBJECT_PLAN = json.dumps(
    {"subtasks": [{"skill": "pick", "arm": "right", "object": "green cube", "target": None}]}
)


@dataclass(frozen=True)
class Reply:
    """One scripted answer: the assistant's content with HTTP 200, or a raw body with any
    status; sent after ``delay_s`` seconds."""

    content: str | None = None
    status: int = 200
    raw_body: str = ""
    delay_s: float = 0.0


class ChatServer:
    """A chat-completions server on 127.0.0.1 (a free port) answering from a script; the last
    reply repeats once the script runs out. Records every request body."""

    def __init__(self, replies: list[Reply]):
        self.replies = list(replies)
        self.requests: list[dict] = []
        self.paths: list[str] = []
        self.headers: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.paths.append(self.path)
                server.headers.append(dict(self.headers))
                reply = server.replies.pop(0) if len(server.replies) > 1 else server.replies[0]
                time.sleep(reply.delay_s)
                if reply.content is not None:
                    message = {"role": "assistant", "content": reply.content}
                    payload = json.dumps({"choices": [{"index": 0, "message": message}]})
                else:
                    payload = reply.raw_body
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(payload.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout tests)

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.thread = threading.Thread(
            target=self.http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/v1"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def serve() -> Iterator:
    servers: list[ChatServer] = []

    def start(*replies: Reply) -> ChatServer:
        servers.append(ChatServer(list(replies)))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def planner(server: ChatServer, timeout_s: float = 5.0) -> HttpPlanner:
    config = HttpPlannerConfig(
        server.base_url, "tiny-vlm", api_key="secret", timeout_s=timeout_s, retry_delay_s=0.0
    )
    return HttpPlanner(config)


def observation() -> BrainObservation:
    image = np.random.default_rng(1).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    return BrainObservation({"cam_high": image}, time_s=0.5, objects=OBJECTS)


def test_a_good_answer_becomes_the_plan(serve):
    server = serve(Reply(GOOD_PLAN))
    subtasks = planner(server).plan("transfer the cube", observation())
    assert [s.text for s in subtasks] == [
        "pick up the red cube with the right arm",
        "hand the red cube to the left arm",
    ]
    assert server.paths == ["/v1/chat/completions"]
    assert server.headers[0]["Authorization"] == "Bearer secret"
    assert server.requests[0]["model"] == "tiny-vlm"


def test_the_request_carries_the_images_as_data_urls_and_the_schema(serve):
    server = serve(Reply(GOOD_PLAN))
    seen = observation()
    planner(server).plan("transfer the cube", seen)
    request = server.requests[0]
    assert request["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "plan", "schema": plan_schema(OBJECTS), "strict": True},
    }
    assert request["temperature"] == 0.0
    user = request["messages"][-1]["content"]
    (url,) = [part["image_url"]["url"] for part in user if part["type"] == "image_url"]
    assert url.startswith("data:image/png;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    np.testing.assert_array_equal(np.asarray(decoded), seen.images["cam_high"])
    assert {"type": "text", "text": "Instruction: transfer the cube"} in user


def test_a_timeout_is_retried(serve):
    server = serve(Reply(GOOD_PLAN, delay_s=1.5), Reply(GOOD_PLAN))
    start = time.monotonic()
    subtasks = planner(server, timeout_s=0.3).plan("transfer the cube", observation())
    assert len(subtasks) == 2
    assert len(server.requests) == 2
    assert time.monotonic() - start < 1.2  # gave up on the first after 0.3 s, not 1.5 s


def test_malformed_json_is_retried_with_the_reason(serve):
    server = serve(Reply('{"subtasks": [{"skill": "pick", '), Reply(GOOD_PLAN))
    assert len(planner(server).plan("transfer the cube", observation())) == 2
    retry = server.requests[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": '{"subtasks": [{"skill": "pick", '}
    assert "rejected: the answer holds no JSON object" in retry[-1]["content"][0]["text"]


def test_a_malformed_response_body_is_retried(serve):
    server = serve(Reply(status=200, raw_body="<html>gateway</html>"), Reply(GOOD_PLAN))
    assert len(planner(server).plan("transfer the cube", observation())) == 2
    assert len(server.requests) == 2


def test_a_server_error_is_retried(serve):
    server = serve(Reply(status=500, raw_body='{"error": "busy"}'), Reply(GOOD_PLAN))
    assert len(planner(server).plan("transfer the cube", observation())) == 2
    assert server.requests[0] == server.requests[1]  # the same question again


def test_always_500_raises_naming_the_status_and_the_attempts(serve):
    server = serve(Reply(status=500, raw_body='{"error": "out of memory"}'))
    with pytest.raises(BrainError) as error:
        planner(server).plan("transfer the cube", observation())
    message = str(error.value)
    assert "HttpPlanner.plan failed after 3 attempts" in message
    assert message.count("HTTP 500") == 3
    assert "out of memory" in message
    assert len(server.requests) == 3


def test_a_refused_request_is_not_retried(serve):
    server = serve(Reply(status=400, raw_body='{"error": "json_schema not supported"}'))
    with pytest.raises(BrainError, match=r"HTTP 400 .*json_schema not supported"):
        planner(server).plan("transfer the cube", observation())
    assert len(server.requests) == 1


def test_a_plan_naming_an_absent_object_is_rejected_and_the_reason_fed_back(serve):
    server = serve(Reply(ABSENT_OBJECT_PLAN), Reply(GOOD_PLAN))
    assert len(planner(server).plan("transfer the cube", observation())) == 2
    feedback = server.requests[1]["messages"][-1]["content"][0]["text"]
    assert "$.subtasks[0].object: 'green cube' is not one of ['red cube']" in feedback
    assert server.requests[1]["messages"][-2]["content"] == ABSENT_OBJECT_PLAN


def test_rejected_answers_end_in_an_error_quoting_them(serve):
    server = serve(Reply(ABSENT_OBJECT_PLAN))
    with pytest.raises(BrainError) as error:
        planner(server).plan("transfer the cube", observation())
    assert str(error.value).count("green cube") >= 3
    assert len(server.requests[2]["messages"]) == 2 + 2 * 2  # two rounds of feedback


def test_check_asks_for_a_verdict(serve):
    verdict = '{"status": "done", "confidence": 0.75, "reason": "lifted"}'
    server = serve(Reply(GOOD_PLAN), Reply(verdict))
    http_planner = planner(server)
    subtask = http_planner.plan("transfer the cube", observation())[0]
    assert http_planner.check(subtask, observation()) == Verdict("done", 0.75, "lifted")
    response_format = server.requests[-1]["response_format"]["json_schema"]
    assert (response_format["name"], response_format["schema"]) == ("verdict", VERDICT_SCHEMA)
    user = server.requests[-1]["messages"][-1]["content"]
    assert user[-1] == {"type": "text", "text": "Subtask: pick up the red cube with the right arm"}


def test_replan_sends_the_history(serve):
    server = serve(Reply(GOOD_PLAN))
    http_planner = planner(server)
    first = http_planner.plan("transfer the cube", observation())[0]
    history = PlanHistory("transfer the cube", ((first, Verdict("failed", 0.9, "dropped")),))
    assert len(http_planner.replan(history, observation())) == 2
    user = server.requests[-1]["messages"][-1]["content"]
    tried = "1. pick up the red cube with the right arm: failed (0.90) dropped"
    assert any(tried in part.get("text", "") for part in user)
