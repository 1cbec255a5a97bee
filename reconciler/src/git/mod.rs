//! netward's Git edge, in-process through libgit2: fetching the tracked ref
//! into a mirror (`fetch`), resolving revisions and reading a revision's
//! policy files (here), checking commit signatures (`signature`), and
//! noticing commits to a local checkout (`watch`). No `git` program is run.

/// Called when something the loop waits for happens (a fetch nobody waited
/// for ended, the tracked ref moved); returns false once nobody listens any
/// more, which stops a watcher. The edges know nothing of the loop.
pub type OnChange = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

pub mod auth;
pub mod fetch;
pub mod known_hosts;
pub mod signature;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use git2::{ObjectType, Repository, Status, StatusOptions, TreeWalkMode, TreeWalkResult};

/// The repository holding `dir` (which may be a subdirectory of its work
/// tree, as `git -C dir` allows), and `dir`'s path inside it.
pub fn open(dir: &Path) -> Result<(Repository, String), String> {
    let repo = Repository::discover(dir)
        .map_err(|e| format!("{}: not in a Git repository: {}", dir.display(), e.message()))?;
    let prefix = match repo.workdir().and_then(|w| w.canonicalize().ok()) {
        Some(work) => {
            let here = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
            here.strip_prefix(&work).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
        }
        None => String::new(),
    };
    Ok((repo, prefix))
}

/// `path` (relative to `prefix`, the caller's directory) as a path from the
/// repository's root, without `./` or a trailing slash; "" is the whole tree.
fn from_root(prefix: &str, path: &str) -> Result<String, String> {
    let joined: PathBuf = Path::new(prefix).join(path);
    let mut parts: Vec<String> = Vec::new();
    for c in joined.components() {
        match c {
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            std::path::Component::ParentDir if parts.pop().is_none() => {
                return Err(format!("{path}: outside the repository"));
            }
            std::path::Component::RootDir => return Err(format!("{path}: give a path inside the repository")),
            _ => {}
        }
    }
    Ok(parts.join("/"))
}

/// The commit `rev` names (a branch, tag, id, `HEAD~2`, ...).
pub fn resolve_in(repo: &Repository, rev: &str) -> Result<git2::Oid, String> {
    repo.revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map(|c| c.id())
        .map_err(|e| format!("{rev}: no such commit: {}", e.message()))
}

/// The revision's full commit id.
pub fn resolve(dir: &Path, rev: &str) -> Result<String, String> {
    let (repo, _) = open(dir)?;
    resolve_in(&repo, rev).map(|o| o.to_string())
}

/// The merge base of HEAD with the default branch (origin's HEAD, else main
/// or master). On the default branch itself that is HEAD, so the working
/// tree is compared with the last commit.
pub fn default_base(dir: &Path) -> Result<String, String> {
    let (repo, _) = open(dir)?;
    let head = resolve_in(&repo, "HEAD")?;
    for c in ["origin/HEAD", "origin/main", "origin/master", "main", "master"] {
        if let Ok(base) = resolve_in(&repo, c).and_then(|o| repo.merge_base(head, o).map_err(|e| e.to_string())) {
            return Ok(base.to_string());
        }
    }
    Err("no default branch found; pass --base".into())
}

/// Whether a file is a policy file: YAML or JSON, not under a hidden directory.
fn wanted(f: &str) -> bool {
    let hidden = f.split('/').any(|part| part.starts_with('.') && part != "." && part != "..");
    !hidden && (f.ends_with(".yaml") || f.ends_with(".yml") || f.ends_with(".json"))
}

/// Whether `f` (from the root) is `under` or inside it.
fn inside(f: &str, under: &str) -> bool {
    under.is_empty() || f == under || f.strip_prefix(under).is_some_and(|rest| rest.starts_with('/'))
}

/// Why a revision's policy files could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilesError {
    /// The policy path is not in the revision at all: almost always a typo
    /// or a moved directory, never "no policies".
    PathMissing { path: String, at: String },
    /// Git could not answer (no such revision, a broken repository).
    Git(String),
}

impl std::fmt::Display for FilesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilesError::PathMissing { path, at } => write!(f, "policy path {path:?} does not exist in {at}"),
            FilesError::Git(e) => f.write_str(e),
        }
    }
}

impl From<String> for FilesError {
    fn from(e: String) -> Self {
        FilesError::Git(e)
    }
}

/// Every `*.yaml`, `*.yml` and `*.json` file under `path` at `rev` (None:
/// the working tree), as (display name, text). Display names are
/// `REV:path` for revisions and plain paths for the working tree. A path
/// that does not exist is [`FilesError::PathMissing`], not an empty list.
pub fn files(dir: &Path, rev: Option<&str>, path: &str) -> Result<Vec<(Arc<str>, String)>, FilesError> {
    let (repo, prefix) = open(dir)?;
    files_in(&repo, &prefix, rev, path)
}

/// [`files`] in a repository already open (`prefix`: the caller's
/// directory inside it, as [`open`] returns it).
pub fn files_in(
    repo: &Repository,
    prefix: &str,
    rev: Option<&str>,
    path: &str,
) -> Result<Vec<(Arc<str>, String)>, FilesError> {
    let under = from_root(prefix, path)?;
    let missing = |at: String| FilesError::PathMissing { path: path.to_string(), at };
    let mut out = match rev {
        Some(r) => {
            let commit = resolve_in(repo, r)?;
            if !path_in_commit(repo, commit, &under)? {
                return Err(missing(format!("commit {}", crate::text::short_id(&commit.to_string()))));
            }
            let short = crate::text::cut(r, 8);
            files_at(repo, commit, &under)?.into_iter().map(|(f, t)| (Arc::from(format!("{short}:{f}")), t)).collect()
        }
        None => {
            if let Some(work) = repo.workdir() {
                if !under.is_empty() && !work.join(&under).exists() {
                    return Err(missing("the working tree".into()));
                }
            }
            working_files(repo, &under)?
        }
    };
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// A revision's policy files: (path, text), sorted by path.
pub type PolicyFiles = Vec<(Arc<str>, String)>;

/// The policy files of both sides of a diff. A path missing on one side is
/// an empty side (a pull request that adds or removes the whole directory);
/// missing on both, it is a typo and an error, never "nothing changed".
pub fn revision_files(
    dir: &Path,
    base: &str,
    head: Option<&str>,
    path: &str,
) -> Result<(PolicyFiles, PolicyFiles), String> {
    let side = |r: Option<&str>| match files(dir, r, path) {
        Ok(f) => Ok(Some(f)),
        Err(FilesError::PathMissing { .. }) => Ok(None),
        Err(e) => Err(e.to_string()),
    };
    match (side(Some(base))?, side(head)?) {
        (None, None) => Err(format!(
            "policy path {path:?} exists in neither the base ({}) nor {}: check --path",
            crate::text::short_id(base),
            head.map_or_else(|| "the working tree".to_string(), |h| format!("the head ({})", crate::text::short_id(h)))
        )),
        (b, h) => Ok((b.unwrap_or_default(), h.unwrap_or_default())),
    }
}

/// Whether `under` (from the root; "" is the root) is in `commit`'s tree.
fn path_in_commit(repo: &Repository, commit: git2::Oid, under: &str) -> Result<bool, String> {
    if under.is_empty() {
        return Ok(true);
    }
    let root =
        repo.find_commit(commit).and_then(|c| c.tree()).map_err(|e| format!("commit {commit}: {}", e.message()))?;
    Ok(root.get_path(Path::new(under)).is_ok())
}

/// The policy files under `under` in `commit`'s tree, read from the object
/// database (no checkout), as (path from the root, text).
pub fn files_at(repo: &Repository, commit: git2::Oid, under: &str) -> Result<Vec<(String, String)>, String> {
    let fail = |e: git2::Error| format!("commit {commit}: {}", e.message());
    let root = repo.find_commit(commit).and_then(|c| c.tree()).map_err(fail)?;
    let mut found: Vec<(String, git2::Oid)> = Vec::new();
    let tree = if under.is_empty() {
        root
    } else {
        // A missing directory holds no policies (as an empty one).
        let Ok(entry) = root.get_path(Path::new(under)) else { return Ok(Vec::new()) };
        match entry.kind() {
            Some(ObjectType::Tree) => repo.find_tree(entry.id()).map_err(fail)?,
            Some(ObjectType::Blob) if wanted(under) && entry.filemode() != 0o120000 => {
                found.push((under.to_string(), entry.id()));
                return read_blobs(repo, found);
            }
            _ => return Ok(Vec::new()),
        }
    };
    let base = if under.is_empty() { String::new() } else { format!("{under}/") };
    tree.walk(TreeWalkMode::PreOrder, |parent, entry| {
        // Symbolic links (mode 120000) and submodules are not policies.
        if entry.kind() == Some(ObjectType::Blob) && entry.filemode() != 0o120000 {
            let f = format!("{base}{parent}{}", entry.name().unwrap_or_default());
            if wanted(&f) {
                found.push((f, entry.id()));
            }
        }
        TreeWalkResult::Ok
    })
    .map_err(fail)?;
    read_blobs(repo, found)
}

fn read_blobs(repo: &Repository, found: Vec<(String, git2::Oid)>) -> Result<Vec<(String, String)>, String> {
    found
        .into_iter()
        .map(|(f, id)| {
            let blob = repo.find_blob(id).map_err(|e| format!("{f}: {}", e.message()))?;
            Ok((f, String::from_utf8_lossy(blob.content()).into_owned()))
        })
        .collect()
}

/// Tracked and untracked (not ignored) policy files in the work tree, as
/// `git ls-files --cached --others --exclude-standard` lists them.
fn working_files(repo: &Repository, under: &str) -> Result<Vec<(Arc<str>, String)>, String> {
    let work = repo.workdir().ok_or("a bare repository has no working tree; pass --head")?;
    let mut names: Vec<String> = Vec::new();
    let index = repo.index().map_err(|e| e.message().to_string())?;
    // Symbolic links are not policies (as in revisions).
    names.extend(index.iter().filter(|e| e.mode != 0o120000).map(|e| String::from_utf8_lossy(&e.path).into_owned()));
    let mut opts = StatusOptions::new();
    opts.include_untracked(true).recurse_untracked_dirs(true).include_ignored(false);
    let statuses = repo.statuses(Some(&mut opts)).map_err(|e| e.message().to_string())?;
    names.extend(
        statuses.iter().filter(|s| s.status().contains(Status::WT_NEW)).filter_map(|s| s.path().ok().map(String::from)),
    );
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for f in names.into_iter().filter(|f| inside(f, under) && wanted(f)) {
        let at = work.join(&f);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            continue;
        }
        // A tracked file deleted in the work tree is simply gone.
        if let Ok(text) = std::fs::read_to_string(at) {
            out.push((Arc::from(f), text));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_taken_from_the_callers_directory_to_the_root() {
        assert_eq!(from_root("", "."), Ok("".into()));
        assert_eq!(from_root("", "./policies/"), Ok("policies".into()));
        assert_eq!(from_root("policies", "."), Ok("policies".into()));
        assert_eq!(from_root("policies", "../other/x.yaml"), Ok("other/x.yaml".into()));
        assert!(from_root("", "../x").is_err() && from_root("", "/etc").is_err());
        assert!(inside("policies/a.yaml", "policies") && inside("anything", ""));
        assert!(!inside("policies-old/a.yaml", "policies"));
        assert!(wanted("a/b.yml") && !wanted("a/.hidden/b.yaml") && !wanted("README.md"));
    }
}
