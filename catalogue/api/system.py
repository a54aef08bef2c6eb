"""Liveness, readiness, the OpenAPI document and its interactive docs page."""

from __future__ import annotations

import hmac
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Response, current_app, jsonify, request

from catalogue import __version__
from catalogue.api.routing import OPERATIONS, op, runtime
from catalogue.errors import Unauthenticated
from catalogue.metrics import CONTENT_TYPE
from catalogue.schemas import ErrorSchema, HealthSchema

bp = Blueprint("system", __name__)


@op(
    bp,
    "GET",
    "/healthz",
    "Liveness: the process answers",
    tag="system",
    response_schema=HealthSchema,
)
def healthz() -> Response:
    return jsonify({"status": "ok", "details": {"version": __version__}})


@op(
    bp,
    "GET",
    "/readyz",
    "Readiness: store and search reachable (with details)",
    tag="system",
    response_schema=HealthSchema,
    errors=(503,),
)
def readyz() -> Response:
    ready, details = runtime().readiness()
    response = jsonify({"status": "ready" if ready else "unavailable", "details": details})
    response.status_code = 200 if ready else 503
    return response


@op(
    bp,
    "GET",
    "/metrics",
    "Prometheus metrics: request latency, harvest outcomes, outbox lag, cohort questions and "
    "budget refusals (Bearer CATALOGUE_METRICS_TOKEN when it is set)",
    tag="system",
    errors=(401,),
)
def metrics() -> Response:
    rt = runtime()
    expected = rt.config.metrics_token
    if expected:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), expected.encode()):
            raise Unauthenticated("send 'Authorization: Bearer <the metrics token>'")
    body = current_app.extensions["catalogue_metrics"].exposition()
    return Response(body, mimetype=None, content_type=CONTENT_TYPE,
                    headers={"Cache-Control": "no-store"})


def build_openapi(server_url: str = "/") -> dict[str, Any]:
    spec = APISpec(
        title="Cancer Imaging Catalogue API",
        version=__version__,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={
            "description": "Metadata catalogue and cohort-feasibility search for cancer "
            "imaging. Authenticate with `Authorization: Bearer <token>`."
        },
        servers=[{"url": server_url}],
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", schema=ErrorSchema)
    paths: dict[str, dict[str, Any]] = {}
    for o in OPERATIONS:
        operation: dict[str, Any] = {
            "summary": o.summary,
            "tags": [o.tag],
            "operationId": f"{o.method.lower()}{o.path}".replace("/", "_")
            .replace("{", "")
            .replace("}", ""),
        }
        params = [
            {"name": seg[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for seg in o.path.split("/")
            if seg.startswith("{")
        ]
        params += [
            {"name": n, "in": "query", "required": False, "schema": {"type": t}, "description": d}
            for n, t, d in o.query
        ]
        if params:
            operation["parameters"] = params
        if o.auth != "public":
            operation["security"] = [{"bearer": []}]
            operation["description"] = (
                "Requires a token" if o.auth == "token" else "Requires an administrator's token"
            )
        if o.request_schema is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": o.request_schema}},
            }
        responses: dict[str, Any] = {str(o.status): {"description": "Success"}}
        if o.response_schema is not None:
            responses[str(o.status)]["content"] = {
                "application/json": {"schema": o.response_schema}
            }
        for code in sorted(set(o.errors) | ({401, 403} if o.auth != "public" else set())):
            responses[str(code)] = {
                "description": "Error",
                "content": {"application/json": {"schema": "Error"}},
            }
        operation["responses"] = responses
        paths.setdefault(o.path, {})[o.method.lower()] = operation
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    doc: dict[str, Any] = spec.to_dict()
    return doc


@op(bp, "GET", "/api/v1/openapi.json", "This OpenAPI 3 document", tag="system")
def openapi() -> Response:
    return jsonify(build_openapi())


_DOCS = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cancer Imaging Catalogue API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:62rem;padding:1rem;color:#1b1b1b}
h1{font-size:1.4rem} details{border:1px solid #ccd;border-radius:6px;margin:.4rem 0;padding:.3rem .6rem}
summary{cursor:pointer} code{background:#f2f3f7;padding:0 .25rem}
.m{display:inline-block;min-width:4.2rem;font-weight:700}
.get{color:#0a6} .post{color:#06c} .put{color:#a60} .delete{color:#c22}
textarea,input{width:100%;box-sizing:border-box;font:13px monospace}
pre{background:#f6f7fa;padding:.5rem;overflow:auto;max-height:24rem}
label{display:block;margin-top:.4rem;font-size:.85rem}
</style></head><body>
<h1>Cancer Imaging Catalogue API</h1>
<p>Machine-readable: <a href="/api/v1/openapi.json"><code>/api/v1/openapi.json</code></a>.
Try an operation below; paste a token to call protected ones.</p>
<label for="token">Bearer token (kept in this page only)</label>
<input id="token" type="password" autocomplete="off" placeholder="cic_...">
<div id="ops">Loading…</div>
<script>
(async function(){
  const spec = await (await fetch('/api/v1/openapi.json')).json();
  const root = document.getElementById('ops'); root.textContent = '';
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const d = document.createElement('details');
      const s = document.createElement('summary');
      s.innerHTML = '<span class="m ' + method + '">' + method.toUpperCase() + '</span> <code></code> ';
      s.querySelector('code').textContent = path;
      s.append(op.summary || '');
      d.append(s);
      const params = (op.parameters || []);
      const inputs = {};
      for (const p of params) {
        const l = document.createElement('label'); l.textContent = p.name + ' (' + p.in + ')';
        const i = document.createElement('input'); i.name = p.name; l.append(i); d.append(l);
        inputs[p.name] = [p, i];
      }
      let body = null;
      if (op.requestBody) {
        const l = document.createElement('label'); l.textContent = 'JSON body';
        body = document.createElement('textarea'); body.rows = 6; body.value = '{}';
        l.append(body); d.append(l);
      }
      const b = document.createElement('button'); b.textContent = 'Send'; d.append(b);
      const out = document.createElement('pre'); d.append(out);
      b.addEventListener('click', async () => {
        let url = path; const q = new URLSearchParams();
        for (const [name, [p, i]] of Object.entries(inputs)) {
          if (p.in === 'path') url = url.replace('{' + name + '}', encodeURIComponent(i.value));
          else if (i.value) q.append(name, i.value);
        }
        if ([...q].length) url += '?' + q;
        const headers = {'Accept': 'application/json'};
        const t = document.getElementById('token').value.trim();
        if (t) headers['Authorization'] = 'Bearer ' + t;
        if (body) headers['Content-Type'] = 'application/json';
        const r = await fetch(url, {method: method.toUpperCase(), headers, body: body ? body.value : undefined});
        const text = await r.text();
        try { out.textContent = r.status + '\\n' + JSON.stringify(JSON.parse(text), null, 2); }
        catch (e) { out.textContent = r.status + '\\n' + text; }
      });
      root.append(d);
    }
  }
})();
</script></body></html>"""


@bp.get("/api/docs")
def docs() -> Response:
    return Response(_DOCS, mimetype="text/html")
