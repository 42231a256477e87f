"""A parsed project (seekrun/parser/parse.py), its diff against the manifest last written, and
how to persist both: what the `parse`, `run` and `show` commands share."""
from __future__ import annotations

import sys


def print_warnings(warnings) -> None:
    from seekrun.secrets import redact

    for w in warnings:
        where = w.path if w.line is None else f"{w.path}:{w.line}"
        print(redact(f"{where}: warning: {w.message}" if where else f"warning: {w.message}"), file=sys.stderr)


class Compiled:
    """A parsed project, its diff against the current manifest, and how to persist both."""

    def __init__(self, project_dir, strict: bool, diff: bool = True, values=None, params: dict | None = None):
        """project_dir: a folder, or a Project already found. diff=False (for `run`) skips
        loading the previous manifest when this seekrun wrote it: only `parse` shows a diff.
        values: the run-time template values (parser/runvars.py), from the date options.
        params: the run params given (--param, KEY=VALUE after --), over the project's defaults."""
        from seekrun.hashing import file_sig
        from seekrun.parser.parse import parse_project

        self.result = result = parse_project(project_dir, strict=strict, run_values=values,
                                                    run_params=params)
        self.project = result.project
        self.manifest = result.manifest
        self.path = self.project.target_dir / "manifest.json"
        self.seeknal: list = []  # filled by load_previous when Seeknal wrote target/manifest.json
        cache = result.parse_cache
        ours = cache.meta.get("manifest_sig") == file_sig(self.path) and self.path.exists()
        self.changed = True
        if ours and cache.meta.get("digest") == result.digest:
            self.old, self.changed = self.manifest, False  # written from exactly this content
        elif ours and not diff:
            self.old = None  # ours (so not from a newer seekrun), and out of date: no need to read it
        else:
            from seekrun.previous import load_previous

            self.old = load_previous(self.path, result.warnings, self.seeknal)
            if self.old is not None and not self.seeknal:
                self.changed = self.old.content_bytes() != self.manifest.content_bytes()
        self._diff = None

    @property
    def diff(self):
        from seekrun.diff import ManifestDiff

        if self._diff is None:
            self._diff = ManifestDiff(self.old, self.manifest)
        return self._diff

    def save(self) -> None:
        """Write the manifest (only if its content changed) and the caches, atomically."""
        result, manifest, cache = self.result, self.manifest, self.result.parse_cache
        if self.seeknal:  # Seeknal's target/manifest.json: kept aside, said once
            from seekrun.previous import keep_seeknal

            note = keep_seeknal(self.path)
            if note is not None:
                result.warnings.append(note)
                if self.reported:
                    print_warnings([note])
        if self.changed:  # Manifest.save also saves a new env key, before the hashes it keys
            manifest.save(self.path)
        root = self.project.root
        result.file_cache.save({str(root / f) for n in manifest.nodes.values()
                                for f in [*(n.get("data_files") or []), *(n.get("live_files") or []),
                                          *(n.get("output_files") or [])]})
        from seekrun.hashing import file_sig

        cache.meta.update(digest=result.digest, manifest_sig=file_sig(self.path))
        cache.save(cache.seen)

    reported = False

    def report(self, verbose: bool = False) -> None:
        self.reported = True
        print_warnings(self.result.warnings)
        if verbose:
            for note in self.result.notes:
                print(note, file=sys.stderr)
