"""
The real-config corpus: nginx WebSocket configs as well-known self-hosted
projects publish them (tests/system/corpus/, each file naming its source), run
through real nginx 1.22 (`nginx -t`) and through wstunnel's loader.

``CORPUS_TABLE`` is the measuring instrument for the real-configs issue: for each
file, what wstunnel refuses today and which issue adds it.  The test fails
when a file that should load does not, and also when a file listed as
refused starts loading or is refused for a different set of reasons, so the
table stays true as features land.  ``tests/system/corpus/README.md`` holds the
counts the table gives; a test keeps it in step.

The files are kept as published.  What the test changes, only in its temporary
copy, is where they point on disk: certificate, key, DH-parameter and log
paths go to files under the test's directory, and an absolute ``include`` of
a file another tool installs (certbot's options-ssl-nginx.conf) goes to the
copy in tests/system/corpus/include/.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from attrs import frozen

from nginx_support import find_nginx
from tls_support import Authority
from wstunnel.config.loader import load_config
from wstunnel.config.model import ConfigError, ConfigErrors

CORPUS = Path(__file__).resolve().parent / "corpus"
INCLUDES = CORPUS / "include"
README = CORPUS / "README.md"
NGINX_CHECK = 30.0  # seconds `nginx -t` may take

HTTP = "http"  # a conf.d / sites-enabled file: the content of nginx's http block
MAIN = "main"  # a whole nginx.conf
SERVER = "server"  # location blocks for an existing server block

REWRITE = 13  # the real-configs issue: rewrite module, locations, headers, TLS and listen options
FILES = 14  # static files, try_files, error pages, gzip
ACCESS = 15  # access and abuse control

# The issue that makes wstunnel accept each thing the corpus needs.
ISSUE: dict[str, int] = {}


@frozen
class Entry:
    """One corpus file: where the project puts it, and what wstunnel refuses in it today."""

    context: str = HTTP
    refused: frozenset[str] = frozenset()


def entry(*refused: str, context: str = HTTP) -> Entry:
    return Entry(context, frozenset(refused))


CORPUS_TABLE: dict[str, Entry] = {
    "code-server.conf": entry(),
    "coder.conf": entry(),
    "discourse.conf": entry(),
    "gitea.conf": entry(),
    "gotify.conf": entry(),
    "gradio.conf": entry(),
    "grafana.conf": entry(),
    "guacamole.conf": entry(context=SERVER),
    "hedgedoc.conf": entry(),
    "home-assistant.conf": entry(context=MAIN),
    "immich.conf": entry(),
    "jellyfin.conf": entry(),
    "jenkins.conf": entry(),
    "jupyterhub.conf": entry(),
    "mastodon.conf": entry(),
    "mattermost.conf": entry(),
    "nextcloud-aio.conf": entry(),
    "nextcloud-talk-signaling.conf": entry(),
    "ntfy.conf": entry(),
    "odoo.conf": entry(),
    "onlyoffice.conf": entry(),
    "peertube.conf": entry(),
    "rancher.conf": entry(),
    "rocketchat.conf": entry(),
    "synapse.conf": entry(),
    "zammad.conf": entry(),
    "zulip.conf": entry(),
}

# What a refusal message says -> the name the table uses for it.  A message of
# another shape is kept whole, so a new kind of refusal shows up in the table.
_FEATURES = (
    (re.compile(r'^"(\w+)" is not supported by wstunnel$'), r"\1"),
    (re.compile(r'^unknown directive "#"$'), "# between arguments"),
    (re.compile(r'^unknown directive "(\S+)"$'), r"\1"),
    (re.compile(r"^regular expression locations are not supported"), "location ~"),
    (re.compile(r'^"\^~" locations are not supported'), "location ^~"),
    (re.compile(r"^named locations are not supported"), "location @"),
    (re.compile(r"^nested locations are not supported"), "nested location"),
    (re.compile(r'^"listen" parameter "(\w+)[="]'), r"listen \1"),
    (re.compile(r'^variables in "(\w+)" are not supported'), r"\1 with variables"),
    (re.compile(r'^"(\w+)" value "(\S+)" is not supported'), r"\1 \2"),
    (re.compile(r'^"(\w+) off" is not supported'), r"\1 off"),
    (re.compile(r'^"(\w+)" directive is duplicate$'), r"\1 twice"),
    (re.compile(r'^unknown "(sent_http_|upstream_http_|cookie_|arg_)\w*" variable$'), r"$\1*"),
    (re.compile(r'^unknown "(\w+)" variable$'), r"$\1"),
)


def feature(error: ConfigError) -> str:
    """The table's name for what ``error`` refuses."""
    for pattern, name in _FEATURES:
        match = pattern.match(error.message)
        if match:
            return match.expand(name)
    return error.message


# ---------------------------------------------------------------- the files on disk


@frozen
class Materials:
    """The files the corpus's paths are pointed at."""

    cert: str
    key: str
    ca: str
    dhparam: str
    logs: Path
    cache: Path


@pytest.fixture(scope="module")
def materials(tmp_path_factory: pytest.TempPathFactory) -> Materials:
    root = tmp_path_factory.mktemp("corpus-materials")
    authority = Authority(root)
    cert, key = authority.issue("site", ["example.com", "localhost"])
    dhparam = root / "dhparam.pem"
    subprocess.run(
        ["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048",
         "-out", str(dhparam)],
        check=True, capture_output=True, timeout=NGINX_CHECK,
    )
    (root / "logs").mkdir()
    (root / "cache").mkdir()
    return Materials(cert, key, authority.path, str(dhparam), root / "logs", root / "cache")


def _paths(materials: Materials) -> dict[str, str]:
    return {
        "ssl_certificate": materials.cert,
        "ssl_certificate_key": materials.key,
        "ssl_trusted_certificate": materials.ca,
        "ssl_client_certificate": materials.ca,
        "ssl_dhparam": materials.dhparam,
    }


_PATH_LINE = re.compile(
    r"^(?P<lead>\s*(?P<name>ssl_certificate|ssl_certificate_key|ssl_trusted_certificate"
    r"|ssl_client_certificate|ssl_dhparam|include|access_log|error_log|proxy_cache_path)\s+)"
    r"(?P<path>[^\s;]+)",
    re.M,
)


def localise(text: str, materials: Materials) -> str:
    """``text`` with its paths on disk pointed at the test's files (see the module docstring)."""
    files = _paths(materials)

    def point(match: re.Match[str]) -> str:
        name, path = match["name"], match["path"]
        if name in files:
            path = files[name]
        elif name == "include" and (INCLUDES / Path(path).name).is_file():
            path = str(INCLUDES / Path(path).name)
        elif name in ("access_log", "error_log") and path.startswith("/"):
            path = str(materials.logs / Path(path).name)
        elif name == "proxy_cache_path":
            path = str(materials.cache)
        return match["lead"] + path

    return _PATH_LINE.sub(point, text)


def prepare(name: str, materials: Materials, directory: Path) -> Path:
    """
    The corpus file made ready to load, placed as its project says: the
    file wstunnel is given (for location blocks, a server that includes them).
    """
    context = CORPUS_TABLE[name].context
    local = directory / name
    local.write_text(localise((CORPUS / name).read_text(), materials))
    if context != SERVER:
        return local
    wrapper = directory / f"server-{name}"
    wrapper.write_text(f"server {{\n    listen 80;\n    include {local};\n}}\n")
    return wrapper


def nginx_conf(config: Path, context: str, directory: Path) -> Path:
    """The nginx.conf that holds ``config`` where its project puts it."""
    temp = "".join(f"    {kind}_temp_path {directory / kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main = directory / "nginx.conf"
    if context == MAIN:
        text = config.read_text()
        events = "" if re.search(r"^\s*events\s*\{", text, re.M) else "events {}\n"
        main.write_text(f"pid {directory / 'nginx.pid'};\n{events}include {config};\n")
    else:
        main.write_text(f"pid {directory / 'nginx.pid'};\nevents {{}}\n"
                        f"http {{\n{temp}    include {config};\n}}\n")
    return main


def wstunnel_refuses(config: Path) -> frozenset[str]:
    """What wstunnel's loader refuses in ``config``: nothing when it loads."""
    try:
        load_config(str(config))
    except ConfigErrors as exc:
        return frozenset(feature(e) for e in exc.errors)
    return frozenset()


# ---------------------------------------------------------------- the tests


def corpus_files() -> list[str]:
    return sorted(p.name for p in CORPUS.glob("*.conf"))


def test_the_table_lists_every_corpus_file():
    assert sorted(CORPUS_TABLE) == corpus_files()


@pytest.mark.parametrize("name", corpus_files())
def test_each_file_names_its_source(name):
    header = (CORPUS / name).read_text().split("\n", 6)
    assert header[0].startswith("# Source: "), f"{name}: the first line names the project"
    assert any(line.startswith("# Repository: ") for line in header), f"{name}: no repository line"
    assert any(line.startswith("# Adapted: ") for line in header), f"{name}: no 'Adapted:' line"


def test_every_refusal_belongs_to_an_issue_and_every_issue_entry_is_still_refused():
    refused = {f for e in CORPUS_TABLE.values() for f in e.refused}
    assert refused <= ISSUE.keys(), f"no issue named for {sorted(refused - ISSUE.keys())}"
    # What wstunnel has learned to load leaves the map, so it names only what is still missing.
    assert ISSUE.keys() <= refused, f"no longer refused anywhere: {sorted(ISSUE.keys() - refused)}"


@pytest.mark.parametrize("name", corpus_files())
def test_nginx_accepts_it(name, materials, tmp_path):
    config = prepare(name, materials, tmp_path)
    main = nginx_conf(config, CORPUS_TABLE[name].context, tmp_path)
    done = subprocess.run([find_nginx(), "-t", "-q", "-p", str(tmp_path), "-c", str(main), "-e", "stderr"],
                          capture_output=True, text=True, timeout=NGINX_CHECK)
    assert done.returncode == 0, f"nginx -t refuses {name}:\n{done.stderr}"


@pytest.mark.parametrize("name", corpus_files())
def test_wstunnel_refuses_exactly_what_the_table_says(name, materials, tmp_path):
    expected = CORPUS_TABLE[name].refused
    refused = wstunnel_refuses(prepare(name, materials, tmp_path))
    if not expected:
        assert not refused, f"{name} should load; wstunnel refuses {sorted(refused)}"
    elif not refused:
        pytest.fail(f"{name} loads now: make its entry in CORPUS_TABLE empty")
    else:
        assert refused == expected, (
            f"{name}: newly refused {sorted(refused - expected)}, "
            f"no longer refused {sorted(expected - refused)}: update CORPUS_TABLE"
        )


def summary() -> str:
    """The counts the table gives, as tests/system/corpus/README.md records them."""
    loading = sorted(n for n, e in CORPUS_TABLE.items() if not e.refused)
    needs = Counter(f for e in CORPUS_TABLE.values() for f in e.refused)
    only_later = sorted(
        n for n, e in CORPUS_TABLE.items() if e.refused and all(ISSUE[f] != REWRITE for f in e.refused)
    )
    lines = [
        f"{len(loading)} of {len(CORPUS_TABLE)} configs load today: {', '.join(loading)}.",
        f"{len(only_later)} more {'needs' if len(only_later) == 1 else 'need'} only the static-files ({FILES})"
        f" or access-control ({ACCESS}) issues"
        + (f": {', '.join(only_later)}." if only_later else "."),
        "",
        f"| config | refused today, issue {REWRITE} | issue {FILES} | issue {ACCESS} |",
        "|---|---|---|---|",
    ]
    for name, item in sorted(CORPUS_TABLE.items()):
        cells = [", ".join(f"`{f}`" for f in sorted(item.refused) if ISSUE[f] == issue) or "-"
                 for issue in (REWRITE, FILES, ACCESS)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| refused today | configs | issue |", "|---|---|---|"]
    lines += [f"| `{f}` | {count} | {ISSUE[f]} |"
              for f, count in sorted(needs.items(), key=lambda item: (-item[1], item[0]))]
    return "\n".join(lines) + "\n"


def test_the_readme_records_the_counts():
    text = summary()
    print(text)
    assert text in README.read_text(), f"tests/system/corpus/README.md should contain:\n{text}"
