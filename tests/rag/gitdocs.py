"""A labelled retrieval set over real documentation: Debian's `git-doc` package (HTML).

Only the file names and the questions live here; the pages come from the package
(`scripts/setup.sh --test` installs it). Questions are phrased as a user would ask, not
with the page's own words; each has the one page that answers it.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = "git-doc"
DOC_DIR = Path("/usr/share/doc/git-doc")

QUESTIONS: list[tuple[str, str]] = [
    ("how do I undo my last commit but keep the changes in my files", "git-reset.html"),
    ("put away my uncommitted work for a while so I can switch branches", "git-stash.html"),
    ("find which commit introduced a bug by testing halfway points", "git-bisect.html"),
    ("who last changed each line of this file", "git-blame.html"),
    ("take one commit from another branch and apply it onto mine", "git-cherry-pick.html"),
    ("make a copy of a remote repository on my machine", "git-clone.html"),
    ("delete untracked files from my working directory", "git-clean.html"),
    ("mark a release with an annotated, signed label", "git-tag.html"),
    ("work on two branches at the same time in separate folders", "git-worktree.html"),
    ("search the source code of the repository for a string", "git-grep.html"),
    ("get back a commit I lost after a hard reset", "git-reflog.html"),
    ("squash several commits into one and reorder them interactively", "git-rebase.html"),
    ("stop build output files from showing up as untracked", "gitignore.html"),
    ("run a script automatically before every commit is made", "githooks.html"),
    ("include another project's repository inside mine as a subdirectory",
     "git-submodule.html"),
    ("export the tree at a tag as a tar or zip file", "git-archive.html"),
    ("send my patches to a mailing list by email", "git-send-email.html"),
    ("turn my commits into patch files", "git-format-patch.html"),
    ("apply a series of patches from a mailbox file", "git-am.html"),
    ("rename a file that git tracks", "git-mv.html"),
    ("throw away my edits to one file and get the committed version back",
     "git-restore.html"),
    ("create a new commit that cancels the changes of an old one", "git-revert.html"),
    ("summarize commits per author for the release announcement", "git-shortlog.html"),
    ("clean up unnecessary files and compress the local repository", "git-gc.html"),
    ("check the object database for corruption and dangling objects", "git-fsck.html"),
    ("only check out some directories of a huge monorepo", "git-sparse-checkout.html"),
    ("keep my password in memory for a few minutes instead of typing it each time",
     "git-credential-cache.html"),
    ("attach extra information to a commit without changing its hash", "git-notes.html"),
    ("compare two versions of a patch series after I rebased it", "git-range-diff.html"),
    ("reuse how I resolved a merge conflict when the same conflict comes back",
     "git-rerere.html"),
    ("convert line endings between CRLF and LF for some file types", "gitattributes.html"),
    ("name a commit by the nearest tag, like v1.2-3-gabcdef", "git-describe.html"),
    ("find the best common ancestor of two branches", "git-merge-base.html"),
    ("add a second server to push to and list the ones I have", "git-remote.html"),
]

DISTRACTORS = [
    "git-add.html", "git-commit.html", "git-branch.html", "git-checkout.html",
    "git-switch.html", "git-merge.html", "git-pull.html", "git-push.html", "git-fetch.html",
    "git-log.html", "git-diff.html", "git-show.html", "git-status.html", "git-rm.html",
    "git-init.html", "gitfaq.html", "giteveryday.html", "gittutorial.html", "git-difftool.html",
    "git-mergetool.html", "git-bundle.html", "git-cherry.html", "git-request-pull.html",
    "git-maintenance.html", "git-prune.html", "git-repack.html", "gitmodules.html",
    "gitcredentials.html", "git-credential-store.html", "git-apply.html", "git-replace.html",
    "git-interpret-trailers.html", "gitworkflows.html",
]

DOCUMENTS = sorted({doc for _, doc in QUESTIONS} | set(DISTRACTORS))


def available() -> bool:
    return all((DOC_DIR / name).is_file() for name in DOCUMENTS)


def load() -> list[tuple[str, bytes]]:
    return [(name, (DOC_DIR / name).read_bytes()) for name in DOCUMENTS]


def evaluate(search: object, modes: tuple[str, ...] = ("dense", "sparse", "hybrid"),
             k: int = 20) -> dict[str, dict[str, float]]:
    """recall@1, recall@3 and MRR (over distinct documents) per mode.

    Args:
        search: callable(query, mode, k) -> list of hit dicts with "document", best first.
    """
    out: dict[str, dict[str, float]] = {}
    for mode in modes:
        r1 = r3 = rr = 0.0
        for question, expected in QUESTIONS:
            ranked = list(dict.fromkeys(h["document"] for h in search(question, mode, k)))
            if expected in ranked:
                rank = ranked.index(expected) + 1
                r1 += rank == 1
                r3 += rank <= 3
                rr += 1 / rank
        n = len(QUESTIONS)
        out[mode] = {"recall@1": r1 / n, "recall@3": r3 / n, "mrr": rr / n}
    return out
