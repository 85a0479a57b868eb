from twisted.application.service import ServiceMaker

wstunnel = ServiceMaker(
    "wstunnel",
    "wstunnel.tap",
    "WebSocket-aware HTTP/1.1 reverse proxy configured with nginx syntax",
    "wstunnel",
)
