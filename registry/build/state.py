"""The image a stage is building: its config as it stands, its layers, and its cache key so far.

A stage starts from its base (an image's config and layers, `scratch`, or another stage's result) and
each step changes the config's `config` section, appends a history entry and perhaps a layer. At the end
the state is written into the store as an OCI image: config blob, manifest, and the reference(s).
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from registry.build.layers import BuiltLayer
from registry.client.media import blob_descriptor, image_manifest, layer_type_for
from registry.client.platforms import Platform
from registry.client.store import ImageStore, LayerRef, LocalImage


def timestamp(epoch: int | None) -> str:
    """RFC 3339 in UTC: SOURCE_DATE_EPOCH's time when set (reproducible builds), else now."""
    moment = datetime.fromtimestamp(epoch, UTC) if epoch is not None else datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if epoch is None else "%Y-%m-%dT%H:%M:%SZ")


def _oci(layer: LayerRef) -> str:
    """The OCI name of a base layer's type (Docker's are the same bytes), for an OCI manifest."""
    if layer.media_type.startswith("application/vnd.docker.image.rootfs."):
        with open(layer.path, "rb") as blob:
            return layer_type_for(blob.read(4))
    return layer.media_type


def _serialize(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class ImageState:
    config: dict[str, Any]  # the whole image config: architecture, os, config, rootfs, history
    layers: list[BuiltLayer] = field(default_factory=list)
    cache_key: str = ""
    base_id: str | None = None  # the base image's own ID, until a step changes the config

    @classmethod
    def scratch(cls, platform: Platform) -> ImageState:
        config: dict[str, Any] = {
            "architecture": platform.architecture,
            "os": platform.os,
            **({"variant": platform.variant} if platform.variant else {}),
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        }
        return cls(config, [], "scratch")

    @classmethod
    def from_image(cls, image: LocalImage) -> ImageState:
        config = copy.deepcopy(image.config)
        config.setdefault("config", {})
        config.setdefault("history", [])
        layers = [
            BuiltLayer(layer.digest, layer.diff_id or "", layer.path.stat().st_size, layer.path, _oci(layer))
            for layer in image.layers
        ]
        return cls(config, layers, image.manifest_digest, image.config_digest)

    def copy(self) -> ImageState:
        return ImageState(copy.deepcopy(self.config), list(self.layers), self.cache_key, self.base_id)

    @property
    def settings(self) -> dict[str, Any]:
        """The `config` section: Env, Cmd, Entrypoint, WorkingDir, User, ..."""
        section: dict[str, Any] = self.config.setdefault("config", {})
        return section

    @property
    def diff_ids(self) -> list[str]:
        return [layer.diff_id for layer in self.layers]

    @property
    def env(self) -> dict[str, str]:
        return {
            key: value for key, _, value in (item.partition("=") for item in self.settings.get("Env") or [])
        }

    def set_env(self, name: str, value: str) -> None:
        env = self.env
        env[name] = value
        self.settings["Env"] = [f"{key}={val}" for key, val in env.items()]

    def record(self, created: str, created_by: str, layer: BuiltLayer | None, key: str) -> None:
        """A step happened: its history entry, its layer if it made one, and the new cache key."""
        entry: dict[str, Any] = {"created": created, "created_by": created_by}
        if layer is None:
            entry["empty_layer"] = True
        else:
            self.layers.append(layer)
        self.config["history"].append(entry)
        self.config["created"] = created
        self.cache_key = key
        self.base_id = None

    def config_bytes(self) -> bytes:
        document = copy.deepcopy(self.config)
        document["rootfs"] = {"type": "layers", "diff_ids": self.diff_ids}
        document.pop("container_config", None)  # Docker's copy of the last step's config: stale now
        document.pop("container", None)
        return _serialize(document)

    def image_id(self) -> str:
        """The config digest, as `docker images` shows the image ID."""
        if self.base_id is not None:
            return self.base_id
        return "sha256:" + hashlib.sha256(self.config_bytes()).hexdigest()

    def save(self, store: ImageStore, reference: str | None) -> LocalImage:
        if self.base_id is not None:  # no step changed the base: it is the image, as with Docker
            image = store.image(self.cache_key)  # the base's manifest digest, until a step records
            if reference:
                store.tag(image, reference)
            return image
        config = self.config_bytes()
        layers = (blob_descriptor(layer.media_type, layer.digest, layer.size) for layer in self.layers)
        return store.add_image(reference, _serialize(image_manifest(config, layers)), config)
