"""`registry build`: the stages a target needs, built step by step through the step cache, into the store.

Progress reads like Docker's classic builder: `Step N/M : INSTRUCTION`, ` ---> Using cache` on a hit, the
image ID after each step, RUN's output as it comes. Everything the build adds to the store happens under
the store's lease, so a concurrent `image prune` cannot take a layer away before the image names it; the
unpacked roots of intermediate steps are removed at the end (the final image's root is kept for `run`).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from registry.build import copying, settings
from registry.build.cache import CachedStep, StepCache, step_key
from registry.build.context import BuildContext
from registry.build.errors import BuildError
from registry.build.fetch import download
from registry.build.ignore import IgnoreRules
from registry.build.layers import BuiltLayer, store_tree
from registry.build.owners import Owners, image_owners
from registry.build.parser import Dockerfile, Instruction, Stage, parse, parse_instruction
from registry.build.run import run_command
from registry.build.state import ImageState, timestamp
from registry.build.words import process_word, process_words
from registry.client import reference as references
from registry.client.platforms import Platform
from registry.client.store import ImageStore, LocalImage
from registry.runtime.containers import ImageToRun, Runtime
from registry.runtime.spec import DEFAULT_PATH, Process, merge_env
from registry.runtime.users import resolve_user
from registry.unpack import PathEscape

# How the builder gets a base image: from the local store, or pulled (reference, platform or None).
ImageSource = Callable[[str, str | None], LocalImage]
# Build arguments Docker predefines: accepted without an ARG, never warned about.
_PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
PREDEFINED_ARGS = frozenset({*_PROXIES, *(name.lower() for name in _PROXIES), "SOURCE_DATE_EPOCH"})
CONFIG_ONLY = frozenset({"ENV", "LABEL", "MAINTAINER", "CMD", "ENTRYPOINT", "EXPOSE", "VOLUME", "USER",
                         "STOPSIGNAL", "HEALTHCHECK", "SHELL", "ONBUILD"})  # fmt: skip


@dataclass(frozen=True)
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    platform: str | None = None
    network: str = "host"
    epoch: int | None = None  # SOURCE_DATE_EPOCH


@dataclass
class _Scope:
    """One stage's view of the build arguments, and what its earlier instructions set."""

    args: dict[str, str | None] = field(default_factory=dict)
    flags: settings.StageFlags = field(default_factory=settings.StageFlags)

    def defined(self) -> dict[str, str]:
        return {name: value for name, value in self.args.items() if value is not None}


class Builder:
    def __init__(
        self, store: ImageStore, runtime: Runtime, images: ImageSource, options: BuildOptions, out: TextIO
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.images = images
        self.options = options
        self.out = out
        self.cache = StepCache(store, enabled=not options.no_cache)
        self.built: dict[int, ImageState] = {}
        self.used_args: set[str] = set()
        self.global_args: dict[str, str] = {}

    # ------------------------------------------------------------------------------------------ the build

    def build(self, context: BuildContext) -> LocalImage:
        dockerfile = parse(context.dockerfile, context.dockerfile_name)
        self.context = context
        self.dockerfile = dockerfile
        self.ignore = IgnoreRules.read(context.root)
        self._global_args(dockerfile)
        target = dockerfile.stage(self.options.target) if self.options.target else dockerfile.stages[-1]
        if target is None:
            raise BuildError(f"target stage {self.options.target!r} could not be found")
        stages = self._needed(target)
        self.total = sum(1 + len(stage.instructions) for stage in stages)
        self.number = 0
        roots_before = set(self.runtime.cache.roots())
        try:
            with self.store.lease():
                for stage in stages:
                    self.built[stage.index] = self._stage(stage)
                final = self.built[target.index]
                image = final.save(self.store, self.options.tags[0] if self.options.tags else None)
                for tag in self.options.tags[1:]:
                    self.store.tag(image, tag)
        finally:
            made = set(self.runtime.cache.roots()) - roots_before
            keep = [self.built[target.index].diff_ids] if target.index in self.built else []
            self.runtime.remove_roots(made, keep)
        unused = sorted(set(self.options.build_args) - self.used_args - PREDEFINED_ARGS)
        if unused:
            self._say(f"[Warning] One or more build-args {unused} were not consumed")
        self._say(f"Successfully built {image.id}")
        for tag in self.options.tags:
            self._say(f"Successfully tagged {references.familiar(tag)}")
        return image

    def _say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def _global_args(self, dockerfile: Dockerfile) -> None:
        for instruction in dockerfile.global_args:
            for name, value in self._declared(instruction, self.global_args, {}):
                if value is not None:
                    self.global_args[name] = value

    def _declared(
        self, instruction: Instruction, env: Mapping[str, str], outer: Mapping[str, str]
    ) -> Iterator[tuple[str, str | None]]:
        """ARG NAME[=DEFAULT] ...: each name with the value it takes (build arg, default, global)."""
        for word in process_words(instruction.args, env, self.dockerfile.escape):
            name, equals, default = word.partition("=")
            if name in self.options.build_args:
                self.used_args.add(name)
                yield name, self.options.build_args[name]
            else:
                yield name, default if equals else outer.get(name)

    def _needed(self, target: Stage) -> list[Stage]:
        """The target and the stages it builds on (FROM) or copies from (COPY --from), in file order."""
        needed: dict[int, Stage] = {}
        pending = [target]
        while pending:
            stage = pending.pop()
            if stage.index in needed:
                continue
            needed[stage.index] = stage
            references = [process_word(stage.base, self.global_args, self.dockerfile.escape)]
            references += [
                process_word(instruction.flags["from"], self.global_args, self.dockerfile.escape)
                for instruction in stage.instructions
                if instruction.keyword == "COPY" and "from" in instruction.flags
            ]
            for reference in references:
                found = self.dockerfile.stage(reference)
                if found is not None and found.index < stage.index:
                    pending.append(found)
                elif found is not None and found.index >= stage.index:
                    raise BuildError(f"stage {stage.index} uses stage {reference!r}, which is not before it")
        return [needed[index] for index in sorted(needed)]

    # ------------------------------------------------------------------------------------------ stages

    def _step(self, text: str) -> None:
        self.number += 1
        self._say(f"Step {self.number}/{self.total} : {text}")

    def _stage(self, stage: Stage) -> ImageState:
        escape = self.dockerfile.escape
        base = process_word(stage.base, self.global_args, escape)
        self._step(f"FROM {base}" + (f" AS {stage.name}" if stage.name else ""))
        platform = process_word(stage.platform, self.global_args, escape) if stage.platform else None
        state = self._base(base, platform, stage)
        self._say(f" ---> {state.image_id()[7:19]}")
        scope = _Scope()
        triggers = state.settings.pop("OnBuild", None) or []
        if triggers:
            self._say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
        for trigger in triggers:
            self._execute(state, scope, parse_instruction(trigger, stage.line, self.context.dockerfile_name))
        for instruction in stage.instructions:
            self._step(instruction.text)
            self._execute(state, scope, instruction)
            if instruction.keyword != "ARG":
                self._say(f" ---> {state.image_id()[7:19]}")
        return state

    def _base(self, reference: str, platform: str | None, stage: Stage) -> ImageState:
        if reference == "scratch":
            wanted = platform or self.options.platform
            return ImageState.scratch(Platform.parse(wanted) if wanted else Platform.host())
        earlier = next((s for s in self.dockerfile.stages if s.name == reference.lower()), None)
        if earlier is not None and earlier.index < stage.index:
            return self.built[earlier.index].copy()
        return ImageState.from_image(self.images(reference, platform or self.options.platform))

    # ------------------------------------------------------------------------------------------ steps

    def _execute(self, state: ImageState, scope: _Scope, instruction: Instruction) -> None:
        try:
            if instruction.keyword == "ARG":
                for name, value in self._declared(
                    instruction, {**scope.defined(), **state.env}, self.global_args
                ):
                    scope.args[name] = value
            elif instruction.keyword in CONFIG_ONLY:
                self._configure(state, scope, instruction)
            elif instruction.keyword == "WORKDIR":
                self._workdir(state, scope, instruction)
            elif instruction.keyword == "RUN":
                self._run(state, scope, instruction)
            else:
                self._copy(state, scope, instruction)
        except (BuildError, PathEscape, ValueError) as error:
            name = self.context.dockerfile_name
            raise BuildError(f"{name}:{instruction.line}: {instruction.keyword}: {error}") from None

    def _env(self, state: ImageState, scope: _Scope) -> dict[str, str]:
        """What variables in an instruction expand to: ENV wins over ARG, as in Docker."""
        return {**scope.defined(), **state.env}

    def _created(self) -> str:
        return timestamp(self.options.epoch)

    def _record(
        self, state: ImageState, key: str, created_by: str, produce: Callable[[], BuiltLayer | None]
    ) -> None:
        """Take the step from the cache, or do it (`produce`) and remember it."""
        cached = self.cache.get(key)
        if cached is not None:
            self._say(" ---> Using cache")
        else:
            cached = CachedStep(self._created(), produce())
            self.cache.put(key, cached)
        state.record(cached.created, created_by, cached.layer, key)

    def _configure(self, state: ImageState, scope: _Scope, instruction: Instruction) -> None:
        settings.apply(state, scope.flags, instruction, self._env(state, scope), self.dockerfile.escape)
        key = step_key(state.cache_key, instruction.keyword, _config_text(state))
        self._record(state, key, f"/bin/sh -c #(nop)  {instruction.text}", lambda: None)

    def _rootfs(self, state: ImageState) -> Path:
        return self.runtime.cache.rootfs(state.layers, state.diff_ids)

    @contextlib.contextmanager
    def _staging(self) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="build-", dir=self.store.staging) as folder:
            yield Path(folder)

    def _owners(self, state: ImageState) -> Owners:
        owners = Owners()
        if owners.rootless:
            owners.image = image_owners(state.layers, state.diff_ids)
        return owners

    def _new_mtime(self) -> int:
        return self.options.epoch if self.options.epoch is not None else int(time.time())

    def _workdir(self, state: ImageState, scope: _Scope, instruction: Instruction) -> None:
        settings.apply(state, scope.flags, instruction, self._env(state, scope), self.dockerfile.escape)
        path = state.settings["WorkingDir"]

        def produce() -> BuiltLayer | None:
            owners = self._owners(state)
            with self._staging() as staging:
                if not copying.stage_folder(path, self._rootfs(state), staging, self._new_mtime(), owners):
                    return None
                return store_tree(self.store, staging, self.options.epoch, owners)

        key = step_key(state.cache_key, "WORKDIR", _config_text(state))
        self._record(state, key, f"/bin/sh -c #(nop) WORKDIR {path}", produce)

    def _run(self, state: ImageState, scope: _Scope, instruction: Instruction) -> None:
        command = settings.command(instruction, state)
        args = sorted(f"{name}={value}" for name, value in scope.defined().items())
        env = merge_env(args, state.settings.get("Env") or [])
        if not any(item.startswith("PATH=") for item in env):
            env.insert(0, DEFAULT_PATH)
        created_by = (f"|{len(args)} {' '.join(args)} " if args else "") + " ".join(command)
        process = Process(
            command, env, state.settings.get("WorkingDir") or "/", state.settings.get("User") or ""
        )
        image = ImageToRun("registry-build", state.image_id(), state.diff_ids, state.layers)
        network = instruction.flags.get("network", "default")
        network = self.options.network if network == "default" else network
        if network not in ("host", "none"):
            raise BuildError(f"RUN --network={network}: use host, none or default")
        key = step_key(state.cache_key, "RUN", json.dumps(command), json.dumps(args))
        self._record(
            state,
            key,
            created_by,
            lambda: run_command(
                self.runtime, self.store, image, process, network, self.options.epoch, self._owners(state)
            ),
        )

    def _copy(self, state: ImageState, scope: _Scope, instruction: Instruction) -> None:
        escape = self.dockerfile.escape
        env = self._env(state, scope)
        words = instruction.exec_form or process_words(instruction.args, env, escape)
        if instruction.exec_form is not None:
            words = [process_word(word, env, escape) for word in words]
        *patterns, dest = words
        with contextlib.ExitStack() as stack:
            sources, ignore, keep_owner = self._sources(instruction, patterns, dest, env, stack)
            flags = instruction.flags
            parts = [
                dest,
                state.settings.get("WorkingDir") or "/",
                flags.get("chown", ""),
                flags.get("chmod", ""),
            ]
            key = step_key(state.cache_key, instruction.keyword, *parts, copying.checksum(sources, ignore))

            def produce() -> BuiltLayer | None:
                lower = self._rootfs(state)
                chown = flags.get("chown")
                options = copying.CopyOptions(
                    owner=_owner(process_word(chown, env, escape), lower) if chown else None,
                    chmod=int(flags["chmod"], 8) if flags.get("chmod") else None,
                    keep_owner=keep_owner,
                    extract=instruction.keyword == "ADD",
                    created_mtime=self._new_mtime(),
                )
                owners = self._owners(state)
                with self._staging() as staging:
                    workdir = state.settings.get("WorkingDir") or "/"
                    copying.stage_copy(
                        sources, dest, workdir, lower, staging, options, owners, ignore, instruction.keyword
                    )
                    return store_tree(self.store, staging, self.options.epoch, owners)

            summary = " ".join(source.relative for source in sources)
            self._record(state, key, f"/bin/sh -c #(nop) {instruction.keyword} {summary} in {dest}", produce)

    def _sources(
        self,
        instruction: Instruction,
        patterns: list[str],
        dest: str,
        env: Mapping[str, str],
        stack: contextlib.ExitStack,
    ) -> tuple[list[copying.Source], IgnoreRules | None, bool]:
        """(sources, the ignore rules that apply, whether owners are kept)."""
        source_from = instruction.flags.get("from")
        if source_from:
            reference = process_word(source_from, env, self.dockerfile.escape)
            stage = self.dockerfile.stage(reference)
            other = (
                self.built[stage.index]
                if stage is not None
                else ImageState.from_image(self.images(reference, None))
            )
            root = self._rootfs(other)
            return copying.find_sources(root, patterns, None), None, True
        local = [pattern for pattern in patterns if not pattern.startswith(("http://", "https://"))]
        sources = copying.find_sources(self.context.root, local, self.ignore)
        for url in patterns:
            if url in local:
                continue
            if instruction.keyword != "ADD":
                raise BuildError(f"source can't be a URL for COPY: {url}")
            fetched = stack.enter_context(download(url))
            _check_sum(fetched.path, instruction.flags.get("checksum"), url)
            name = fetched.name or "index.html"
            mtime = fetched.mtime if fetched.mtime is not None else self._new_mtime()
            sources.append(
                copying.Source(fetched.path, url, name if dest.endswith("/") else None, 0o600, mtime)
            )
        return sources, self.ignore, False


def _config_text(state: ImageState) -> str:
    """What a config step's cache key holds: the settings it produced."""
    return json.dumps([state.settings, state.config.get("author")], sort_keys=True)


def _owner(spec: str, root: Path) -> tuple[int, int]:
    """--chown USER[:GROUP], names looked up in the image; a user alone is its own ID as the group too."""
    identity = resolve_user(spec, root)
    return identity.uid, identity.gid if ":" in spec else identity.uid


def _check_sum(path: Path, expected: str | None, url: str) -> None:
    if not expected:
        return
    from registry.client.store import sha256_file

    if (actual := sha256_file(path)) != expected:
        raise BuildError(f"{url}: expected checksum {expected}, got {actual}")


def source_date_epoch(environment: Mapping[str, str], build_args: Mapping[str, str]) -> int | None:
    """SOURCE_DATE_EPOCH, from a build argument or the environment (as BuildKit reads it)."""
    text = build_args.get("SOURCE_DATE_EPOCH") or environment.get("SOURCE_DATE_EPOCH")
    if not text:
        return None
    if not text.isdigit():
        raise BuildError(f"SOURCE_DATE_EPOCH must be seconds since 1970, not {text!r}")
    return int(text)
