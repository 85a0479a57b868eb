"""The tuning directives of issue 13's response-header part: accepted with a notice, bad values refused as nginx."""

from __future__ import annotations

import pytest

from support import config_errors, write_config
from wstunnel.config.loader import load_config

LINES = {
    "client_body_buffer_size 16k": "request bodies are streamed",
    "sendfile_max_chunk 512k": "64 KiB at a time",
    "output_buffers 2 32k": "no output buffers to size",
    "postpone_output 1460": "never held back",
    "proxy_ignore_client_abort on": "wstunnel closes the upstream connection",
}


@pytest.mark.parametrize("line, instead", LINES.items())
def test_a_notice_at_its_line(tmp_path, line, instead) -> None:
    config = load_config(write_config(tmp_path, f"server {{\n location / {{\n {line};\n proxy_pass http://127.0.0.1:1; }} }}"))
    name = line.split()[0]
    [notice] = [n for n in config.notices if f'"{name}"' in n]
    assert notice.startswith(f"{config.path}:3: ") and instead in notice


@pytest.mark.parametrize(
    "line, message",
    [
        ("output_buffers 0 32k", '"output_buffers" directive invalid value'),
        ("postpone_output x", '"postpone_output" directive invalid value'),
        ("client_body_buffer_size 1k; client_body_buffer_size 2k", '"client_body_buffer_size" directive is duplicate'),
        ("proxy_ignore_client_abort yes", 'invalid value "yes" in "proxy_ignore_client_abort" directive, it must be "on" or "off"'),
    ],
)
def test_refused_as_nginx_refuses(tmp_path, line, message) -> None:
    assert [e.partition(": ")[2] for e in config_errors(tmp_path, f"http {{ {line}; }}")] == [message]
