//! Noticing commits to a local checkout: inotify (through `notify`) on the
//! repository's ref files, debounced, wakes the reconcile loop, so a commit
//! is enforced in well under a second without polling Git.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

use super::OnChange;

/// A burst of ref writes (a commit writes a lock file, renames it, then
/// maybe packs refs) is one wake: sent once the refs are quiet this long...
const QUIET: Duration = Duration::from_millis(20);
/// ...or this long after the burst began, whichever comes first.
const LONGEST: Duration = Duration::from_millis(200);

/// Watches the repository at `repo` and calls `on_move` when a file that
/// can move `git_ref` changes. Falls back to resolving the ref every 100 ms
/// where inotify is unavailable (or out of watches).
pub fn watch_local(repo: &Path, git_ref: &str, on_move: OnChange) {
    let dirs = match git2::Repository::open(repo) {
        Ok(r) => GitDirs { own: r.path().to_path_buf(), common: r.commondir().to_path_buf() },
        Err(_) => GitDirs { own: repo.join(".git"), common: repo.join(".git") },
    };
    if let Err(e) = watch_with_inotify(&dirs, git_ref, on_move.clone()) {
        tracing::warn!(error = %e, "cannot watch the repository with inotify; checking its refs every 100 ms");
        poll(repo, git_ref, on_move);
    }
}

/// A repository's own git directory (HEAD) and the common one (refs; the
/// same unless the checkout is a linked worktree).
struct GitDirs {
    own: PathBuf,
    common: PathBuf,
}

fn watch_with_inotify(dirs: &GitDirs, git_ref: &str, on_move: OnChange) -> notify::Result<()> {
    let (events, bursts) = mpsc::channel::<()>();
    let (own, common, tracked) = (dirs.own.clone(), dirs.common.clone(), git_ref.to_string());
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // An error or a dropped event queue may have hidden a commit: wake.
        let Ok(ev) = res else {
            let _ = events.send(());
            return;
        };
        if ev.need_rescan() {
            let _ = events.send(());
            return;
        }
        // Opens and reads (ours included) are not changes.
        if !matches!(ev.kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)) {
            return;
        }
        // A linked worktree's own directory is inside the common one: its
        // HEAD is tried first.
        let moved = ev.paths.iter().any(|p| {
            let rel = p.strip_prefix(&own).or_else(|_| p.strip_prefix(&common));
            rel.is_ok_and(|r| moves_ref(&r.to_string_lossy(), &tracked))
        });
        if moved {
            let _ = events.send(());
        }
    })?;
    watcher.watch(&dirs.own, RecursiveMode::NonRecursive)?;
    if dirs.common != dirs.own {
        watcher.watch(&dirs.common, RecursiveMode::NonRecursive)?;
    }
    watcher.watch(&dirs.common.join("refs"), RecursiveMode::Recursive)?;
    std::thread::spawn(move || {
        let _watching = watcher;
        while bursts.recv().is_ok() {
            let began = Instant::now();
            loop {
                let left = LONGEST.saturating_sub(began.elapsed());
                match bursts.recv_timeout(QUIET.min(left)) {
                    Ok(()) if !left.is_zero() => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                    _ => break,
                }
            }
            if !on_move() {
                return;
            }
        }
    });
    Ok(())
}

/// Whether a write to `rel` (a path inside the git directory) can move
/// `git_ref`. A plain name is moved only by the files git's lookup rules
/// (`ref_rev_parse_rules`) would read for it, or packed-refs; `HEAD` and
/// revision expressions (`main~1`) by any ref.
fn moves_ref(rel: &str, git_ref: &str) -> bool {
    if rel.ends_with(".lock") {
        return false;
    }
    if rel == "HEAD" || rel == "packed-refs" {
        return true;
    }
    let plain = git_ref != "HEAD" && !git_ref.contains(['~', '^', '@', ':']);
    if !plain {
        return rel.starts_with("refs/");
    }
    let Some(name) = rel.strip_prefix("refs/") else { return rel == git_ref };
    rel == git_ref
        || [name, name.strip_prefix("tags/").unwrap_or(""), name.strip_prefix("heads/").unwrap_or("")]
            .contains(&git_ref)
        || name.strip_prefix("remotes/").is_some_and(|r| r == git_ref || r.strip_suffix("/HEAD") == Some(git_ref))
}

/// The fallback: the tracked ref resolved every 100 ms (opening the
/// repository and reading a few files: well under a millisecond).
fn poll(repo: &Path, git_ref: &str, on_move: OnChange) {
    let (repo, git_ref) = (repo.to_path_buf(), git_ref.to_string());
    std::thread::spawn(move || {
        let mut last = super::resolve(&repo, &git_ref).ok();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = super::resolve(&repo, &git_ref).ok();
            if now != last {
                last = now;
                if !on_move() {
                    return;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_writes_that_can_move_the_tracked_ref_count() {
        assert!(moves_ref("refs/heads/main", "main") && moves_ref("refs/tags/main", "main"));
        assert!(moves_ref("packed-refs", "main") && moves_ref("HEAD", "v1"));
        assert!(!moves_ref("refs/heads/main.lock", "main"), "a lock file is a write in progress");
        assert!(!moves_ref("refs/heads/feature", "main") && !moves_ref("index", "main"));
        assert!(!moves_ref("FETCH_HEAD", "main") && !moves_ref("logs/HEAD", "main"));
        assert!(moves_ref("refs/heads/feature", "HEAD"), "HEAD follows whichever branch it names");
        assert!(moves_ref("refs/heads/x", "main~1") && moves_ref("refs/pull/1/head", "refs/pull/1/head"));
        assert!(moves_ref("refs/pull/1/head", "pull/1/head"), "refs/NAME");
        assert!(
            moves_ref("refs/remotes/origin/main", "origin/main") && moves_ref("refs/remotes/origin/HEAD", "origin")
        );
        assert!(!moves_ref("refs/remotes/origin/main", "main") && !moves_ref("refs/heads/xmain", "main"));
    }

    /// A commit on main of the repository at `repo` (HEAD names main).
    fn commit(repo: &git2::Repository, msg: &str) {
        let sig = git2::Signature::now("t", "t@example.org").expect("signature");
        let tree = repo.find_tree(repo.index().expect("index").write_tree().expect("tree")).expect("tree");
        let parents: Vec<git2::Commit> = repo.head().ok().and_then(|h| h.peel_to_commit().ok()).into_iter().collect();
        let parents: Vec<&git2::Commit> = parents.iter().collect();
        repo.commit(Some("refs/heads/main"), &sig, &sig, msg, &tree, &parents).expect("commit");
    }

    fn new_repo(tag: &str) -> (PathBuf, git2::Repository) {
        let dir = std::env::temp_dir().join(format!("netward-watch-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let repo = git2::Repository::init(&dir).expect("init");
        repo.set_head("refs/heads/main").expect("head");
        commit(&repo, "first");
        (dir, repo)
    }

    #[test]
    fn the_fallback_resolves_the_ref_and_notices_a_commit_to_what_head_names() {
        let (dir, repo) = new_repo("poll");
        let (tx, rx) = mpsc::channel();
        poll(&dir, "HEAD", std::sync::Arc::new(move || tx.send(()).is_ok()));
        assert_eq!(rx.recv_timeout(Duration::from_millis(300)), Err(RecvTimeoutError::Timeout));
        commit(&repo, "second");
        assert_eq!(rx.recv_timeout(Duration::from_secs(2)), Ok(()), "HEAD moved with main");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_commit_wakes_the_watcher_once_and_reads_do_not() {
        let (dir, repo) = new_repo("inotify");
        let commit = |msg: &str| commit(&repo, msg);
        let (tx, rx) = mpsc::channel();
        let dirs = GitDirs { own: repo.path().to_path_buf(), common: repo.commondir().to_path_buf() };
        watch_with_inotify(&dirs, "main", std::sync::Arc::new(move || tx.send(()).is_ok())).expect("inotify");
        // Reading the repository (as every fetch does) is no change.
        let _ = super::super::resolve(&dir, "main").expect("resolve");
        assert_eq!(rx.recv_timeout(Duration::from_millis(300)), Err(RecvTimeoutError::Timeout));
        let t = Instant::now();
        commit("second");
        assert_eq!(rx.recv_timeout(Duration::from_secs(2)), Ok(()));
        assert!(t.elapsed() < LONGEST + Duration::from_millis(100), "woken after {:?}", t.elapsed());
        assert_eq!(rx.recv_timeout(Duration::from_millis(300)), Err(RecvTimeoutError::Timeout), "one commit, one wake");
        // A branch nobody tracks moves: no wake.
        let head = repo.head().expect("head").peel_to_commit().expect("commit");
        repo.branch("feature", &head, false).expect("branch");
        assert_eq!(rx.recv_timeout(Duration::from_millis(300)), Err(RecvTimeoutError::Timeout));
        let _ = std::fs::remove_dir_all(dir);
    }
}
