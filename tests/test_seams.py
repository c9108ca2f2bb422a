"""The code's seams hold: no import cycles, no project imports hidden in functions, daphne's one patch
still fits daphne, and Django's test client sees the same /v1/ middleware as real clients."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

from daphne import http_protocol
from twisted.web import http

from responses_app.api import daphne_patch

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("responses_app", "mockllm_site")
MAX_LINES = 350


def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imported_modules(node: ast.AST, known: dict[str, Path]) -> set[str]:
    """The project modules an import statement names (`from a.b import c` names a.b, or a.b.c when c is a module)."""
    names = set()
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        names = {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in names if name in known}


def top_level_imports(tree: ast.Module, known: dict[str, Path]) -> set[str]:
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue  # for type checkers only: not an import at run time
        found |= imported_modules(node, known)
    return found


def test_no_module_imports_the_projects_modules_inside_a_function():
    known = project_modules()
    hidden = []
    for name, path in known.items():
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if name == "responses_app.apps" and function.name == "ready":
                continue  # where Django says app modules are imported
            hidden += [f"{name}.{function.name}: {m}" for node in ast.walk(function)
                       for m in imported_modules(node, known)]
    assert hidden == []


def test_the_project_has_no_import_cycles():
    known = project_modules()
    graph = {name: top_level_imports(ast.parse(path.read_text()), known) - {name} for name, path in known.items()}
    for name in graph:  # a package's __init__ is imported on the way to its modules
        package = name.rpartition(".")[0]
        while package:
            if package in known:
                graph[name].add(package)
            package = package.rpartition(".")[0]
    cycles = []
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_long_modules_say_why_at_the_top():
    long_ones = [name for name, path in project_modules().items()
                 if len(path.read_text().splitlines()) > MAX_LINES
                 and "longer than" not in (ast.get_docstring(ast.parse(path.read_text())) or "").lower()]
    assert long_ones == []


def test_daphne_still_builds_its_requests_from_the_class_the_patch_replaces():
    # HTTPFactory.buildProtocol looks WebRequest up by name in daphne.http_protocol at every connection.
    assert "protocol.requestFactory = WebRequest" in inspect.getsource(http_protocol.HTTPFactory.buildProtocol)
    daphne_patch.install()
    factory = http_protocol.HTTPFactory(server=None)
    assert factory.buildProtocol(("127.0.0.1", 1)).requestFactory is daphne_patch.APIWebRequest


def test_twisted_and_daphne_still_offer_what_the_patch_uses():
    assert "parsePOSTFormSubmission" in inspect.signature(http.Request.__init__).parameters
    assert "_parsePOSTFormSubmission" in inspect.getsource(http.Request.requestReceived)
    daphne_request = daphne_patch.DaphneWebRequest
    assert "self._response_started = False" in inspect.getsource(daphne_request.__init__)
    assert "def handle_exception" in inspect.getsource(daphne_request)
    # The reason phrase: daphne passes the status alone, and Twisted takes the phrase as `message`.
    assert 'self.setResponseCode(message["status"])' in inspect.getsource(daphne_request.handle_reply)
    assert list(inspect.signature(http.Request.setResponseCode).parameters) == ["self", "code", "message"]
    request = daphne_patch.APIWebRequest.__new__(daphne_patch.APIWebRequest)
    for code, phrase in ((429, b"Too Many Requests"), (529, b"Site is overloaded"), (200, b"OK"), (799, b"Unknown Status")):
        request.setResponseCode(code)
        assert (request.code, request.code_message) == (code, phrase)
    request.setResponseCode(429, b"Slow Down")
    assert request.code_message == b"Slow Down"


def test_the_test_client_sees_the_api_middleware(client, db):
    body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
    refused = client.post("/v1/chat/completions", body, content_type="application/json", HTTP_X_MOCK_STATUS="429")
    assert refused.status_code == 429
    assert refused["retry-after"] == "1"
    assert refused.json()["error"]["type"] == "rate_limit_exceeded"
    answered = client.post("/v1/chat/completions", body, content_type="application/json")
    assert answered.status_code == 200 and answered["x-request-id"].startswith("req_")
    assert answered["Content-Length"] == str(len(answered.content))
