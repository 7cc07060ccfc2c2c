"""The Hugging Face Hub side: download a resizer into the HF cache, upload one.

Offline mode (``HF_HUB_OFFLINE=1``, read when called, not only when huggingface_hub was imported)
means cache only. Without network, a cached resizer still loads and an uncached one fails after
one request: huggingface_hub retries a failed download with back-off (about 20 s), so before a
first download we make a single metadata request without retries.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import (
    HfApi,
    constants,
    get_hf_file_metadata,
    get_token,
    hf_hub_download,
    hf_hub_url,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from downsizenet_hub import __version__
from downsizenet_hub.hub import files
from downsizenet_hub.hub.architectures import architecture_of
from downsizenet_hub.hub.errors import HubAccessError
from downsizenet_hub.hub.names import HF_HUB_PREFIX, HubRef, validate_name
from downsizenet_hub.hub.record import TrainingRecord

if TYPE_CHECKING:
    from torch import nn

LIBRARY_NAME = "downsizenet-hub"
_TRUE = {"1", "ON", "YES", "TRUE"}


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Network failures as huggingface_hub's HTTP client raises them (OSError covers requests)."""
    errors: list[type[BaseException]] = [OSError]
    for module_name in ("httpx2", "httpx"):  # the client of huggingface_hub 2.x / 1.x
        try:
            errors.append(importlib.import_module(module_name).TransportError)
            break
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


_TRANSPORT_ERRORS = _transport_errors()


def is_offline() -> bool:
    """``HF_HUB_OFFLINE`` as set now; huggingface_hub's own flag when the variable is unset."""
    value = os.environ.get("HF_HUB_OFFLINE", "").strip()
    if value:
        return value.upper() in _TRUE
    return bool(constants.HF_HUB_OFFLINE)


def download(
    ref: HubRef,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    token: str | bool | None = None,
    endpoint: str | None = None,
) -> Path:
    """Fetch config.json, model.safetensors and README.md of ``ref`` into the HF cache; return
    the snapshot folder holding them.

    Raises HubAccessError when offline or unreachable and not cached, FileNotFoundError when the
    repository, revision or config.json does not exist, ValueError when it has no safetensors.
    """
    offline = is_offline()
    where = ref.repo_id + (f"@{ref.revision}" if ref.revision else "")

    def fetch(filename: str, revision: str | None, local_only: bool) -> str:
        return hf_hub_download(
            ref.repo_id,
            filename,
            revision=revision,
            cache_dir=None if cache_dir is None else Path(cache_dir),
            token=token,
            endpoint=endpoint,
            local_files_only=local_only,
            library_name=LIBRARY_NAME,
            library_version=__version__,
        )

    try:
        try:
            config_path = fetch(files.CONFIG_FILE, ref.revision, local_only=True)
        except LocalEntryNotFoundError:
            if offline:
                raise HubAccessError(
                    "offline mode is on (HF_HUB_OFFLINE=1) and it is not in the local Hugging "
                    "Face cache"
                ) from None
            _probe(ref, token=token, endpoint=endpoint)
            config_path = fetch(files.CONFIG_FILE, ref.revision, local_only=False)
        else:
            if not offline:  # cached: still look for a newer commit (falls back to the cache)
                config_path = fetch(files.CONFIG_FILE, ref.revision, local_only=False)
        snapshot = Path(config_path).parent
        commit = snapshot.name  # the cache keeps each commit's files in snapshots/<commit>/
        try:
            fetch(files.WEIGHTS_FILE, commit, local_only=offline)
        except LocalEntryNotFoundError:
            raise
        except EntryNotFoundError:
            raise ValueError(
                f"Hugging Face repo {where} has no {files.WEIGHTS_FILE}; downsizenet-hub reads "
                "weights only from safetensors and never unpickles."
            ) from None
        with contextlib.suppress(EntryNotFoundError):  # a resizer loads without its card
            fetch(files.CARD_FILE, commit, local_only=offline)
    except HubAccessError:
        raise
    except (RepositoryNotFoundError, GatedRepoError):
        raise FileNotFoundError(
            "no such repository, or it is private or gated (log in with `hf auth login`)"
        ) from None
    except RevisionNotFoundError:
        raise FileNotFoundError(f"no revision {ref.revision!r}") from None
    except LocalEntryNotFoundError:
        raise HubAccessError(
            "offline or unreachable, and it is not (fully) in the local Hugging Face cache"
        ) from None
    except EntryNotFoundError:
        raise FileNotFoundError(
            f"the repository has no {files.CONFIG_FILE}, so it is not a DownsizeNet"
        ) from None
    except OfflineModeIsEnabled:
        raise HubAccessError("huggingface_hub is in offline mode (HF_HUB_OFFLINE)") from None
    except HfHubHTTPError as error:
        raise HubAccessError(f"the Hugging Face Hub answered: {_one_line(error)}") from None
    except _TRANSPORT_ERRORS as error:
        raise HubAccessError(f"cannot reach the Hugging Face Hub ({_one_line(error)})") from None
    return snapshot


def upload(
    model: nn.Module,
    repo_id: str,
    *,
    record: TrainingRecord | None = None,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    force: bool = False,
    endpoint: str | None = None,
) -> str:
    """Create ``repo_id`` if needed and upload the resizer's three files; return the commit URL.

    A repo that already holds a config.json is refused unless ``force`` (or ``create_pr``, which
    replaces nothing). The files are written to a temporary folder outside the local hub, so a
    failed upload changes nothing locally. Raises HubAccessError when offline, without a token,
    or when the Hub cannot be reached or refuses; FileExistsError as said.
    """
    repo_id = validate_name(repo_id)
    if is_offline():
        raise HubAccessError(f"cannot push to {repo_id}: offline mode is on (HF_HUB_OFFLINE=1).")
    token = token or get_token()
    if not token:
        raise HubAccessError(
            f"cannot push to {repo_id}: no Hugging Face token found (set HF_TOKEN or run "
            "`hf auth login`)."
        )
    api = HfApi(
        endpoint=endpoint, token=token, library_name=LIBRARY_NAME, library_version=__version__
    )
    with tempfile.TemporaryDirectory(prefix="downsizenet-push-") as staging:
        # The card tells readers to load it as hf-hub:owner/name: a plain name is local only.
        files.write_folder(Path(staging), model, record, HF_HUB_PREFIX + repo_id)
        try:
            if not (force or create_pr) and api.file_exists(
                repo_id, files.CONFIG_FILE, revision=revision
            ):
                raise FileExistsError(
                    f"{repo_id} already holds a resizer on the Hugging Face Hub; use force=True "
                    "(--force) to replace it."
                )
            api.create_repo(repo_id, private=private, exist_ok=True)
            commit = api.upload_folder(
                repo_id=repo_id,
                folder_path=staging,
                commit_message=commit_message
                or f"Upload {_title(model)} (downsizenet-hub {__version__})",
                revision=revision,
                create_pr=create_pr,
                allow_patterns=[files.CONFIG_FILE, files.WEIGHTS_FILE, files.CARD_FILE],
            )
        except FileExistsError:
            raise
        except OfflineModeIsEnabled:
            raise HubAccessError(
                f"cannot push to {repo_id}: huggingface_hub is in offline mode (HF_HUB_OFFLINE)."
            ) from None
        except HfHubHTTPError as error:
            raise HubAccessError(
                f"the Hugging Face Hub refused the upload to {repo_id}: {_one_line(error)}"
            ) from None
        except _TRANSPORT_ERRORS as error:
            raise HubAccessError(
                f"cannot reach {api.endpoint} to push {repo_id} ({_one_line(error)}); nothing "
                "was uploaded."
            ) from None
    return str(commit.commit_url)


def _title(model: nn.Module) -> str:
    return architecture_of(files.model_config(model)).title


def _probe(ref: HubRef, *, token: str | bool | None, endpoint: str | None) -> None:
    """One metadata request for config.json, without retries: fails at once without network."""
    url = hf_hub_url(ref.repo_id, files.CONFIG_FILE, revision=ref.revision, endpoint=endpoint)
    get_hf_file_metadata(url, token=token, endpoint=endpoint, retry_on_errors=False)


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
