"""The Hugging Face Hub side, without network: refs served from a real HF cache folder, offline
and unreachable-network behaviour (fast failures), and pushes that fail cleanly."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import huggingface_hub
import pytest
import torch

from downsizenet_hub import DownsizeNet, paths
from downsizenet_hub.hub import (
    HubAccessError,
    from_pretrained,
    publish,
    push_published,
    push_to_hub,
    save_pretrained,
    show,
)
from downsizenet_hub.hub.remote import is_offline

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def tiny() -> DownsizeNet:
    return DownsizeNet(conv_layers=1, channels=4, init="random")


def outputs(model: DownsizeNet) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.linspace(0, 1, 3 * 10 * 10).view(1, 3, 10, 10), size=(4, 4))


def cache_repo(cache: Path, repo_id: str, model: DownsizeNet) -> Path:
    """Lay ``model`` out as huggingface_hub's cache does after a download of ``repo_id``@main."""
    storage = cache / ("models--" + repo_id.replace("/", "--"))
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(COMMIT)
    return save_pretrained(model, storage / "snapshots" / COMMIT, name=repo_id)


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> str:
    """Offline mode off (also in huggingface_hub's import-time flag); returns a dead endpoint."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    return f"http://127.0.0.1:{unused_port()}"


@pytest.fixture
def no_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))


def test_offline_flag_is_read_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_offline()  # conftest sets HF_HUB_OFFLINE=1
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not is_offline()


# ---------------------------------------------------------------------------- loading
@pytest.mark.parametrize(
    "ref", ["hf-hub:owner/model", "hf-hub:owner/model@main", f"hf-hub:owner/model@{COMMIT}"]
)
def test_cached_repo_loads_offline(tmp_path: Path, ref: str) -> None:
    model = tiny()
    cache_repo(tmp_path / "hf", "owner/model", model)
    loaded = from_pretrained(ref, cache_dir=tmp_path / "hf")
    assert torch.equal(outputs(loaded), outputs(model))


def test_uncached_repo_fails_at_once_offline(tmp_path: Path, connections: list[object]) -> None:
    with pytest.raises(FileNotFoundError, match="offline mode is on") as info:
        from_pretrained("hf-hub:owner/missing", cache_dir=tmp_path / "hf")
    assert connections == []
    assert "\n" not in str(info.value)


def test_partly_cached_repo_is_reported(tmp_path: Path) -> None:
    snapshot = cache_repo(tmp_path / "hf", "owner/model", tiny())
    (snapshot / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="not \\(fully\\) in the local Hugging Face cache"):
        from_pretrained("hf-hub:owner/model", cache_dir=tmp_path / "hf")


def test_without_network_a_cached_repo_loads_and_an_uncached_one_fails_fast(
    tmp_path: Path, online: str, connections: list[object]
) -> None:
    model = tiny()
    cache_repo(tmp_path / "hf", "owner/model", model)
    loaded = from_pretrained("hf-hub:owner/model", cache_dir=tmp_path / "hf", endpoint=online)
    assert torch.equal(outputs(loaded), outputs(model))
    with pytest.raises(FileNotFoundError, match="cannot reach the Hugging Face Hub"):
        from_pretrained("hf-hub:owner/missing", cache_dir=tmp_path / "hf", endpoint=online)
    # A try or two per file, not huggingface_hub's retry loop with back-off (~20 s).
    assert 0 < len(connections) <= 4, connections


def test_show_reads_the_card_of_a_cached_repo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_repo(tmp_path / "hf", "owner/model", tiny())
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    assert "DownsizeNet resizer" in show("hf-hub:owner/model")


# ---------------------------------------------------------------------------- pushing
def test_push_offline_fails_at_once(connections: list[object]) -> None:
    publish(tiny(), "me/a")
    with pytest.raises(HubAccessError, match="cannot push to me/b: offline mode is on"):
        push_published("me/a", "me/b", token="hf_not_used")
    with pytest.raises(HubAccessError, match="offline"):
        tiny().push_to_hub("me/b")
    assert connections == []


def test_push_without_token_says_where_tokens_come_from(online: str, no_token: None) -> None:
    with pytest.raises(
        HubAccessError,
        match="no Hugging Face token found \\(set HF_TOKEN or run `hf auth login`\\)",
    ):
        push_to_hub(tiny(), "me/b", endpoint=online)


def test_push_without_network_fails_fast_and_leaves_the_hub_alone(
    online: str, connections: list[object]
) -> None:
    publish(tiny(), "me/a")
    before = sorted(p.name for p in paths.hub_dir().rglob("*"))
    with pytest.raises(
        HubAccessError, match=r"cannot reach http://127\.0\.0\.1:\d+ to push me/b"
    ) as info:
        push_published("me/a", "me/b", token="hf_fake", endpoint=online)
    assert 0 < len(connections) <= 4, connections  # no retry loop with back-off
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in paths.hub_dir().rglob("*")) == before


class FakeHub:
    """A local HTTP server speaking the few Hub endpoints an upload uses, recording requests and
    the committed files. ``accept_token=False`` answers 401 to every POST; ``has_resizer`` makes
    ``config.json`` exist already."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.committed: dict[str, bytes] = {}
        self.accept_token = True
        self.has_resizer = False
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                hub.seen.append(f"HEAD {self.path}")
                if hub.has_resizer:
                    self._reply(200, None, {"ETag": '"abc"', "X-Repo-Commit": COMMIT})
                else:
                    self._reply(404, None, {"X-Error-Code": "RepoNotFound"})

            def do_POST(self) -> None:
                path = self.path.split("?")[0]
                hub.seen.append(f"POST {path}")
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not hub.accept_token:
                    self._reply(401, {"error": "Invalid token"})
                elif path == "/api/repos/create":
                    request = json.loads(body)
                    self._reply(
                        200, {"url": f"{hub.url}/{request['organization']}/{request['name']}"}
                    )
                elif path == "/api/validate-yaml":
                    self._reply(200, {"errors": [], "warnings": []})
                elif path.endswith("/preupload/main"):
                    files = [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                        for f in json.loads(body)["files"]
                    ]
                    self._reply(200, {"files": files})
                elif path.endswith("/commit/main"):
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            value = item["value"]
                            hub.committed[value["path"]] = base64.b64decode(value["content"])
                    repo = path.split("/api/models/")[1].split("/commit/")[0]
                    self._reply(
                        200, {"commitUrl": f"{hub.url}/{repo}/commit/{COMMIT}", "commitOid": COMMIT}
                    )
                else:
                    self._reply(404, {"error": f"not in FakeHub: {path}"})

            def _reply(
                self, status: int, payload: object, headers: dict[str, str] | None = None
            ) -> None:
                body = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def fake_hub(online: str) -> Iterator[FakeHub]:
    hub = FakeHub()
    thread = threading.Thread(
        target=hub.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield hub
    hub.server.shutdown()
    hub.server.server_close()


def test_push_uploads_the_three_files_through_huggingface_hub(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    model = tiny()
    publish(model, "me/a")
    url = push_published("me/a", "someone/b", token="hf_fake", endpoint=fake_hub.url)
    assert url == f"{fake_hub.url}/someone/b/commit/{COMMIT}"
    assert fake_hub.seen == [
        "HEAD /someone/b/resolve/main/config.json",  # the --force check
        "POST /api/repos/create",  # HfApi.create_repo
        "POST /api/validate-yaml",  # HfApi.upload_folder from here on
        "POST /api/models/someone/b/preupload/main",
        "POST /api/models/someone/b/commit/main",
    ]
    assert sorted(fake_hub.committed) == ["README.md", "config.json", "model.safetensors"]
    received = tmp_path / "received"
    received.mkdir()
    for name, content in fake_hub.committed.items():
        (received / name).write_bytes(content)
    assert torch.equal(outputs(from_pretrained(received)), outputs(model))
    card = (received / "README.md").read_text()
    # The card is rendered for the new repo id, with the prefix that sends a load online.
    assert 'from_pretrained("hf-hub:someone/b")' in card


def test_push_refused_by_the_hub_is_one_line(fake_hub: FakeHub) -> None:
    fake_hub.accept_token = False
    with pytest.raises(
        HubAccessError, match="the Hugging Face Hub refused the upload to me/b"
    ) as info:
        push_to_hub(tiny(), "me/b", token="hf_fake", endpoint=fake_hub.url)
    assert "\n" not in str(info.value)
    assert fake_hub.seen[:2] == ["HEAD /me/b/resolve/main/config.json", "POST /api/repos/create"]


def test_push_refuses_to_replace_a_resizer_without_force(fake_hub: FakeHub) -> None:
    fake_hub.has_resizer = True
    with pytest.raises(FileExistsError, match=r"me/b already holds a resizer.*--force"):
        push_to_hub(tiny(), "me/b", token="hf_fake", endpoint=fake_hub.url)
    assert fake_hub.seen == ["HEAD /me/b/resolve/main/config.json"]
    push_to_hub(tiny(), "me/b", token="hf_fake", endpoint=fake_hub.url, force=True)
    assert sorted(fake_hub.committed) == ["README.md", "config.json", "model.safetensors"]


def test_push_validates_the_repo_id() -> None:
    with pytest.raises(ValueError, match="invalid resizer name"):
        push_to_hub(tiny(), "../b", token="hf_fake")


def test_unknown_repo_on_a_reachable_hub_is_reported(fake_hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError,
        match="'hf-hub:someone/missing' on the Hugging Face Hub: no such repository",
    ) as info:
        from_pretrained("hf-hub:someone/missing", cache_dir=tmp_path / "hf", endpoint=fake_hub.url)
    assert "\n" not in str(info.value)
    assert fake_hub.seen == ["HEAD /someone/missing/resolve/main/config.json"]  # one request


# ---------------------------------------------------------------------------- never online
@pytest.mark.parametrize("ref", ["nope/missing", "owner/model"])
def test_a_plain_name_never_goes_online(
    ref: str, tmp_path: Path, fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """timm's convention: only hf-hub: refs reach the Hub, even when one is reachable and holds
    a cached copy."""
    cache_repo(tmp_path / "hf", "owner/model", tiny())
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    with pytest.raises(FileNotFoundError, match=f"for the Hugging Face Hub, write hf-hub:{ref}"):
        show(ref)
    with pytest.raises(FileNotFoundError, match="tried: directory"):
        from_pretrained(ref, cache_dir=tmp_path / "hf", endpoint=fake_hub.url)
    assert fake_hub.seen == []


def test_a_revision_needs_the_hf_hub_prefix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="write hf-hub:owner/model@v1"):
        from_pretrained("owner/model@v1", cache_dir=tmp_path / "hf")
    with pytest.raises(ValueError, match="applies to Hugging Face Hub references only"):
        from_pretrained("owner/model", revision="v1", cache_dir=tmp_path / "hf")
