"""The sandbox's HTTP face: Adobe IMS, the Offer Library, MyPreferences, and ``/_sandbox`` control.

Every API request goes through :func:`serve`, which applies injected faults, renders errors in the
calling service's shapes and writes the journal, so the routes below only say what each call does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import Response

from airflow_provider_prefs.sandbox.faults import BEFORE_PROCESSING
from airflow_provider_prefs.sandbox.state import (
    REDACTED,
    SECRET_HEADERS,
    SandboxError,
    SandboxState,
    redact,
)

DROP_HEADER = "x-sandbox-drop-connection"
MUTATING_ROUTES = frozenset({"offer.patch", "offer.create", "offer.delete", "profile.patch"})
Work = Callable[[Any], Any]


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status_code=status, media_type="application/json", headers=headers)


def error_response(service: str, error: SandboxError, headers: dict[str, str] | None = None) -> Response:
    """An error in the shape the calling service uses."""
    if service == "token":
        return _json(error.status, {"error": error.code, "error_description": error.message}, headers)
    if service == "adobe":
        if error.status in (400, 401, 404):
            return _json(error.status, {"error_code": error.code, "message": error.message}, headers)
        titles = {403: "Forbidden", 409: "Conflict", 429: "Too Many Requests", 503: "Service Unavailable"}
        return _json(
            error.status,
            {
                "type": f"https://ns.adobe.com/aep/errors/{error.code}",
                "status": error.status,
                "title": titles.get(error.status, "Error"),
                "detail": error.message,
            },
            headers,
        )
    if error.text or error.status == 503:
        return Response(error.message, status_code=error.status, media_type="text/plain", headers=headers)
    return _json(error.status, {"Message": error.message}, headers)


def _parse_body(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    if "application/x-www-form-urlencoded" in content_type:
        return dict(parse_qsl(raw.decode()))
    try:
        # Strict JSON, as the vendors' parsers: NaN/Infinity make the body invalid (then a 400).
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return raw.decode("utf-8", "replace")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def create_app(state: SandboxState) -> FastAPI:
    """The FastAPI application serving ``state``."""
    app = FastAPI(title="airflow-provider-prefs sandbox", docs_url=None, redoc_url=None, openapi_url=None)

    async def serve(request: Request, route: str, service: str, resource: str, work: Work) -> Response:
        raw = await request.body()
        body = _parse_body(raw, request.headers.get("content-type", ""))
        fault = state.faults.pick(route)
        applied = False
        response: Response
        if fault is not None and fault.kind in BEFORE_PROCESSING:
            status = 429 if fault.kind == "429" else 503
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
            message = "rate limit exceeded" if status == 429 else "service temporarily unavailable"
            response = error_response(service, SandboxError(status, message), extra)
        else:
            try:
                status, payload = work(body)
                response = _json(status, payload)
                applied = route in MUTATING_ROUTES
            except SandboxError as error:
                response = error_response(service, error)
            if fault is not None and fault.kind == "503_after":
                response = error_response(service, SandboxError(503, "service temporarily unavailable"))
            elif fault is not None and fault.kind == "drop_after":
                response.headers[DROP_HEADER] = "1"
            elif fault is not None and fault.kind == "slow":
                await asyncio.sleep(fault.delay)
        dropped = fault is not None and fault.kind == "drop_after"
        headers = {k: (REDACTED if k in SECRET_HEADERS else v) for k, v in request.headers.items()}
        state.record(
            {
                "time": time.time(),
                "method": request.method,
                "path": request.url.path,
                "raw_path": request.scope.get("raw_path", b"").decode("latin-1"),
                "query": dict(request.query_params),
                "route": route,
                "resource": resource,
                "headers": headers,
                "body": redact(body),
                "status": None if dropped else response.status_code,
                "applied": applied,
                "fault": fault.kind if fault else None,
            }
        )
        return response

    def form_of(body: Any) -> dict[str, str]:
        return body if isinstance(body, dict) else {}

    @app.post("/ims/token/v3")
    async def ims_token(request: Request) -> Response:
        return await serve(
            request, "ims.token", "token", "ims", lambda body: (200, state.issue_token("ims", form_of(body)))
        )

    @app.post("/mypreferences/oauth/token")
    async def mp_token(request: Request) -> Response:
        return await serve(
            request, "mp.token", "token", "mypreferences", lambda body: (200, state.issue_token("mp", form_of(body)))
        )

    def fallback_only(request: Request) -> None:
        if request.query_params.get("offer-type") != "fallback":
            raise SandboxError(400, "query parameter offer-type=fallback is required", code="OFFER-TYPE")

    async def offer_call(
        request: Request, route: str, offer_id: str, act: Callable[[dict[str, Any], Any], Any]
    ) -> Response:
        sandbox = request.headers.get("x-sandbox-name", "")

        def work(body: Any) -> Any:
            client = state.adobe_client(dict(request.headers))
            fallback_only(request)
            return act(client, body)

        return await serve(request, route, "adobe", f"offer:{sandbox}/{offer_id}", work)

    @app.get("/data/core/dps/offers")
    async def list_offers(request: Request) -> Response:
        def act(client: dict[str, Any], body: Any) -> Any:
            params = request.query_params
            limit, start = int(params.get("limit", "20")), int(params.get("start", "0"))
            prop = params.get("property", "")
            name = prop[len("name==") :] if prop.startswith("name==") else None
            results, total = state.list_offers(client["sandbox"], name=name, start=start, limit=limit)
            links = {}
            if start + limit < total:
                links["next"] = {"href": f"{request.url.path}?offer-type=fallback&start={start + limit}&limit={limit}"}
            return 200, {"results": results, "count": len(results), "total": total, "_links": links}

        return await offer_call(request, "offer.list", "*", act)

    @app.post("/data/core/dps/offers")
    async def create_offer(request: Request) -> Response:
        return await offer_call(
            request,
            "offer.create",
            "new",
            lambda client, body: (201, state.create_offer(client["sandbox"], body, client["client_id"])),
        )

    @app.get("/data/core/dps/offers/{offer_id:path}")
    async def get_offer(request: Request, offer_id: str) -> Response:
        return await offer_call(
            request, "offer.get", offer_id, lambda client, body: (200, state.offer(client["sandbox"], offer_id))
        )

    @app.patch("/data/core/dps/offers/{offer_id:path}")
    async def patch_offer(request: Request, offer_id: str) -> Response:
        return await offer_call(
            request,
            "offer.patch",
            offer_id,
            lambda client, body: (200, state.patch_offer(client["sandbox"], offer_id, body, client["client_id"])),
        )

    @app.delete("/data/core/dps/offers/{offer_id:path}")
    async def delete_offer(request: Request, offer_id: str) -> Response:
        def act(client: dict[str, Any], body: Any) -> Any:
            state.delete_offer(client["sandbox"], offer_id)
            return 200, {"id": offer_id, "deleted": True}

        return await offer_call(request, "offer.delete", offer_id, act)

    async def profile_call(request: Request, route: str, client_id: str, act: Callable[..., Any]) -> Response:
        alternate_id = request.query_params.get("alternateId", "")
        alternate_id_type = request.query_params.get("alternateIdType", "")

        def work(body: Any) -> Any:
            caller = state.mp_caller(client_id, request.headers.get("authorization"))
            if not alternate_id or not alternate_id_type:
                raise SandboxError(400, "alternateId and alternateIdType query parameters are required")
            return 200, act(alternate_id, alternate_id_type, body, caller)

        resource = f"profile:{client_id}/{alternate_id_type.lower()}/{alternate_id.lower()}"
        return await serve(request, route, "mypreferences", resource, work)

    @app.get("/api/v4/{client_id}/profiles")
    async def get_profile(request: Request, client_id: str) -> Response:
        return await profile_call(
            request, "profile.get", client_id, lambda alt, typ, body, caller: state.profile(client_id, alt, typ)
        )

    @app.patch("/api/v4/{client_id}/profiles")
    async def patch_profile(request: Request, client_id: str) -> Response:
        return await profile_call(
            request,
            "profile.patch",
            client_id,
            lambda alt, typ, body, caller: state.patch_profile(client_id, alt, typ, body, caller),
        )

    _add_control_routes(app, state)
    return app


def _add_control_routes(app: FastAPI, state: SandboxState) -> None:
    """``/_sandbox``: health, reset, journal, state, config, faults (no auth, never journaled)."""

    def then(action: Callable[[], None], answer: Any) -> Callable[[], Any]:
        def run() -> Any:
            action()
            return answer() if callable(answer) else answer

        return run

    async def guarded(call: Callable[[], Awaitable[Any] | Any]) -> Response:
        try:
            result = call()
            if asyncio.iscoroutine(result):
                result = await result
            return _json(200, result)
        except SandboxError as error:
            return _json(error.status, {"message": error.message})
        except (ValueError, TypeError) as error:
            return _json(400, {"message": str(error)})

    @app.get("/_sandbox/health")
    async def health() -> Response:
        return _json(200, {"ok": True})

    @app.post("/_sandbox/reset")
    async def reset() -> Response:
        return await guarded(then(state.reset, {"reset": True}))

    @app.get("/_sandbox/journal")
    async def journal() -> Response:
        return _json(200, {"entries": state.journal()})

    @app.delete("/_sandbox/journal")
    async def clear_journal() -> Response:
        return await guarded(then(state.clear_journal, {"cleared": True}))

    @app.get("/_sandbox/state")
    async def dump() -> Response:
        return _json(200, state.dump())

    @app.get("/_sandbox/offers/{sandbox}/{offer_id:path}")
    async def offer(sandbox: str, offer_id: str) -> Response:
        return await guarded(lambda: state.offer(sandbox, offer_id))

    @app.get("/_sandbox/profiles/{client_id}")
    async def profile(request: Request, client_id: str) -> Response:
        params = request.query_params
        return await guarded(
            lambda: state.profile(client_id, params.get("alternateId", ""), params.get("alternateIdType", ""))
        )

    @app.put("/_sandbox/config")
    async def config(request: Request) -> Response:
        data = json.loads(await request.body() or b"{}")
        return await guarded(lambda: state.set_config(**data))

    @app.put("/_sandbox/faults")
    async def faults(request: Request) -> Response:
        rules = json.loads(await request.body() or b"{}").get("rules", [])
        return await guarded(
            then(lambda: state.set_faults(rules), lambda: {"rules": [r.to_dict() for r in state.faults.rules]})
        )

    @app.delete("/_sandbox/faults")
    async def clear_faults() -> Response:
        return await guarded(then(lambda: state.set_faults([]), {"rules": []}))


class ConnectionDropper:
    """ASGI wrapper that turns responses marked by a ``drop_after`` fault into a broken connection.

    It starts the response with a Content-Length larger than what follows and then stops, so the
    client sees an incomplete answer (a connection error), never a status code.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        dropping = False

        async def maybe_drop(message: dict[str, Any]) -> None:
            nonlocal dropping
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                if DROP_HEADER.encode() in names:
                    dropping = True
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
                        }
                    )
                    await send({"type": "http.response.body", "body": b'{"partial', "more_body": True})
                    return
            if dropping:
                return
            await send(message)

        # Returning with the response incomplete makes uvicorn close the connection.
        await self.app(scope, receive, maybe_drop)
