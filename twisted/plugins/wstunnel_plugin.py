from twisted.application.service import ServiceMaker

wstunnel = ServiceMaker(
    "wstunnel",
    "wstunnel.app.tap",
    "WebSocket-aware HTTP/1.1 reverse proxy configured with nginx syntax",
    "wstunnel",
)
