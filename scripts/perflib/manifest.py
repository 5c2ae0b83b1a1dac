"""The run manifest: a tab-separated record of what a perf script ran, one entry per line.

    allocator <TAB> NAME <TAB> LIBRARY            an allocator taking part ('-' = no preload)
    skipped   <TAB> NAME <TAB> REASON             an allocator left out (e.g. .so missing)
    run       <TAB> NAME <TAB> REP <TAB> RC <TAB> SECONDS <TAB> OUTPUT_FILE [<TAB> LABEL]
    meta      <TAB> KEY  <TAB> VALUE              free-form facts (git commit, min time, ...)

LABEL optionally says what the run covered (e.g. the one benchmark it ran). Lines starting
with '#' and blank lines are ignored. Shell scripts can append to it with
printf; nothing needs quoting as long as fields hold no tabs or newlines.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ManifestError(ValueError):
    pass


@dataclass
class Run:
    allocator: str
    rep: int
    rc: int
    seconds: float | None
    path: str
    label: str = ""


@dataclass
class Manifest:
    allocators: dict[str, str] = field(default_factory=dict)  # name -> library ('' = none)
    skipped: dict[str, str] = field(default_factory=dict)  # name -> reason
    runs: list[Run] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)

    def allocator_order(self) -> list[str]:
        """Taking part first (in manifest order), then skipped ones."""
        return list(self.allocators) + [a for a in self.skipped if a not in self.allocators]


def parse_manifest(text: str) -> Manifest:
    m = Manifest()
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split("\t")
        kind = f[0]
        try:
            if kind == "allocator" and len(f) == 3:
                m.allocators[f[1]] = "" if f[2] == "-" else f[2]
            elif kind == "skipped" and len(f) == 3:
                m.skipped[f[1]] = f[2]
            elif kind == "meta" and len(f) == 3:
                m.meta[f[1]] = f[2]
            elif kind == "run" and len(f) in (6, 7):
                seconds = None if f[4] in ("", "-") else float(f[4])
                label = f[6] if len(f) == 7 else ""
                m.runs.append(Run(f[1], int(f[2]), int(f[3]), seconds, f[5], label))
            else:
                raise ManifestError(f"line {lineno}: malformed {kind!r} entry: {line!r}")
        except ValueError as e:
            if isinstance(e, ManifestError):
                raise
            raise ManifestError(f"line {lineno}: {e}: {line!r}") from None
    return m


def read_manifest(path: str) -> Manifest:
    with open(path, encoding="utf-8") as f:
        return parse_manifest(f.read())
