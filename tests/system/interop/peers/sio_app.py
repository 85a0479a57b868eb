"""
The socket.io server of the interop suite: python-socketio on its ASGI
driver (engine.io's aiohttp driver mishandles long-polling bodies that
arrive in pieces), run by uvicorn, once per backend (named by ``SIO_BACKEND``).  ``whoami`` tells a client which backend
and session it reached and which transports the server saw that session
use; ``push`` emits events the client must receive in order.
"""

import os
from urllib.parse import parse_qs

import socketio

sio = socketio.AsyncServer(async_mode="asgi")
first_transport: dict[str, str] = {}


@sio.event
async def connect(sid: str, environ: dict) -> None:
    # environ is the request that opened the engine.io session; the socket.io
    # connect itself may already travel over the upgraded WebSocket.
    first_transport[sid] = parse_qs(environ.get("QUERY_STRING", ""))["transport"][0]


@sio.event
async def disconnect(sid: str, reason: str = "") -> None:
    first_transport.pop(sid, None)


@sio.event
async def whoami(sid: str) -> dict:
    return {"backend": os.environ["SIO_BACKEND"], "sid": sid,
            "first": first_transport[sid], "now": sio.transport(sid)}


@sio.event
async def push(sid: str, count: int) -> None:
    for i in range(count):
        await sio.emit("pushed", i, to=sid)


app = socketio.ASGIApp(sio)
