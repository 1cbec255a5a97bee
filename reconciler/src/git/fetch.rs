//! Fetching the tracked ref of a remote repository into a bare mirror:
//! only that ref, shallow (depth 1) where the transport allows, credentials
//! from callbacks, proxies from the environment as git takes them. `file://`, `https://`, `http://`, `ssh://` and scp-style
//! `user@host:path` URLs, all through libgit2.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, FetchOptions, ObjectType, Oid, ProxyOptions,
    RemoteCallbacks, Repository,
};

use super::auth::{redact, GitAuth};
use super::known_hosts;

/// Where fetched refs land in the mirror, one per way of naming the ref.
const LANDING: &str = "refs/netward/fetch/";
/// The commit last fetched for the tracked ref.
pub const TRACKED: &str = "refs/netward/tracked";

/// Fetches with a time limit on silence. libgit2 has no per-fetch timeout
/// (its global socket timeouts are `unsafe` to set, and netward keeps
/// `unsafe` to the netlink crate), and a server that accepts and then says
/// nothing holds a fetch forever; so each fetch runs on its own thread, and
/// a caller waits for it only as long as it chooses (the loop: briefly, so
/// Git trouble never holds up the inventory) and never past `timeout` of
/// silence (a slow first clone that keeps receiving is not cut off). One
/// fetch at a time: a later call joins the one in flight (two would fight
/// over the mirror's lock files), and one a caller stopped waiting for
/// wakes the loop when it ends, so its result is taken at once.
pub struct Fetcher {
    pub timeout: Duration,
    on_end: Option<super::OnChange>,
    in_flight: Mutex<Option<InFlight>>,
}

#[derive(Debug)]
struct InFlight {
    progress: Arc<Progress>,
    done: Receiver<Result<String, FetchError>>,
}

/// When a fetch last heard from the server, whether it has ended, and
/// whether the loop should be woken when it does.
#[derive(Debug)]
struct Progress {
    start: Instant,
    /// Milliseconds after `start`.
    last: AtomicU64,
    ended: AtomicBool,
    unwaited: AtomicBool,
}

impl Progress {
    fn new() -> Self {
        Progress {
            start: Instant::now(),
            last: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            unwaited: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        self.last.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        self.start.elapsed().saturating_sub(Duration::from_millis(self.last.load(Ordering::Relaxed)))
    }
}

/// Why a fetch failed, and whether trying again soon can help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FetchError {
    /// What failed, with the URL (credentials redacted).
    pub message: String,
    /// True where the network, the server or the machine may recover (no
    /// answer, a dropped connection, a busy disk): the loop tries again
    /// soon, backing off. False where only a change of configuration or of
    /// the repository helps (credentials refused, an unknown host key, no
    /// such repository or ref): the loop waits for its interval or a wake.
    pub retryable: bool,
}

impl FetchError {
    fn soon(message: String) -> Self {
        FetchError { message, retryable: true }
    }

    fn permanent(message: String) -> Self {
        FetchError { message, retryable: false }
    }

    /// A libgit2 error, classified: authentication, certificates and the
    /// server's "no such repository" do not pass by themselves.
    fn of_git(message: String, e: &git2::Error) -> Self {
        let permanent = matches!(e.code(), git2::ErrorCode::Auth | git2::ErrorCode::Certificate)
            || e.message().contains("host key")
            || e.message().contains("status code: 404")
            || e.message().contains("status code: 401")
            || e.message().contains("status code: 403")
            || e.message().contains("does not appear to be a git repository")
            || e.message().contains("unsupported URL protocol");
        FetchError { message, retryable: !permanent }
    }
}

/// Local trouble (the mirror's disk, a lock, a thread) may pass.
impl From<String> for FetchError {
    fn from(message: String) -> Self {
        FetchError::soon(message)
    }
}

/// A fetch's end, or that it is still under way.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    /// It ended: the commit fetched, or why not.
    Done(Result<String, FetchError>),
    /// Still fetching (and not yet silent for the time limit).
    Running,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher").field("timeout", &self.timeout).field("waking", &self.on_end.is_some()).finish()
    }
}

impl Fetcher {
    pub fn new(timeout: Duration) -> Self {
        Fetcher { timeout, on_end: None, in_flight: Mutex::new(None) }
    }

    /// A fetcher that calls `on_end` when a fetch nobody waits for any more
    /// ends.
    pub fn waking(timeout: Duration, on_end: super::OnChange) -> Self {
        Fetcher { timeout, on_end: Some(on_end), in_flight: Mutex::new(None) }
    }

    /// [`fetch`], waited for until it ends or falls silent for `timeout`.
    pub fn fetch(&self, remote: &Remote, keep: Option<&str>) -> Result<String, FetchError> {
        match self.attempt(remote, keep, None) {
            Attempt::Done(result) => result,
            Attempt::Running => Err(FetchError::soon(format!("fetch {}: still running", redact(&remote.url, None)))),
        }
    }

    /// [`fetch`] (or the one in flight), waited for at most `wait` (None:
    /// until it ends or falls silent for `timeout`).
    pub fn attempt(&self, remote: &Remote, keep: Option<&str>, wait: Option<Duration>) -> Attempt {
        let say = |what: String| FetchError::soon(redact(&format!("fetch {}: {what}", remote.url), None));
        let mut slot = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let (flight, joined) = match slot.take() {
            Some(f) => (f, true),
            None => match self.start(remote, keep) {
                Ok(f) => (f, false),
                Err(e) => return Attempt::Done(Err(say(e.message))),
            },
        };
        let until = wait.and_then(|w| Instant::now().checked_add(w));
        loop {
            // An ended fetch's result comes first, however long it took.
            if let Ok(result) = flight.done.try_recv() {
                return Attempt::Done(result);
            }
            let quiet = flight.progress.silent_for();
            if quiet >= self.timeout {
                *slot = Some(flight);
                return Attempt::Done(Err(say(if joined {
                    format!("the fetch in progress has heard nothing from the server for {} s", quiet.as_secs())
                } else {
                    format!("no answer within {} s (--fetch-timeout)", self.timeout.as_secs_f64())
                })));
            }
            let mut step = self.timeout - quiet;
            if let Some(until) = until {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // Told before the last look, so an end in between
                    // is either seen here or announced.
                    flight.progress.unwaited.store(true, Ordering::SeqCst);
                    if let Ok(result) = flight.done.try_recv() {
                        return Attempt::Done(result);
                    }
                    *slot = Some(flight);
                    return Attempt::Running;
                }
                step = step.min(left);
            }
            match flight.done.recv_timeout(step) {
                Ok(result) => return Attempt::Done(result),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return Attempt::Done(Err(say("the fetch thread failed".into())))
                }
            }
        }
    }

    fn start(&self, remote: &Remote, keep: Option<&str>) -> Result<InFlight, FetchError> {
        let (tx, done) = mpsc::channel();
        let progress = Arc::new(Progress::new());
        let (remote, p, keep, wake) = (remote.clone(), progress.clone(), keep.map(str::to_string), self.on_end.clone());
        std::thread::Builder::new()
            .name("git-fetch".into())
            .spawn(move || {
                let result = fetch_noting(&remote, keep.as_deref(), &p);
                p.ended.store(true, Ordering::SeqCst);
                let _ = tx.send(result);
                if let (true, Some(on_end)) = (p.unwaited.load(Ordering::SeqCst), wake) {
                    on_end();
                }
            })
            .map_err(|e| FetchError::soon(format!("cannot start a thread: {e}")))?;
        Ok(InFlight { progress, done })
    }

    /// How long a fetch still under way has heard nothing from its server.
    pub fn waiting(&self) -> Option<Duration> {
        let slot = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().filter(|f| !f.progress.ended.load(Ordering::SeqCst)).map(|f| f.progress.silent_for())
    }
}

/// A mirror holding more pack files than this is fetched afresh: libgit2
/// does not repack, and every fetch that brings objects adds one.
const MOST_PACKS: usize = 64;

/// What to fetch and where to keep it.
#[derive(Clone, Debug)]
pub struct Remote {
    pub url: String,
    /// A tag, branch, `HEAD`, full ref name or full commit id.
    pub git_ref: String,
    /// The bare mirror.
    pub cache: PathBuf,
    pub auth: GitAuth,
}

/// Fetches the remote's ref into its mirror and returns the commit id. The
/// commit `keep` (the one in force) stays readable in the mirror.
pub fn fetch(remote: &Remote, keep: Option<&str>) -> Result<String, FetchError> {
    fetch_noting(remote, keep, &Progress::new())
}

fn fetch_noting(remote: &Remote, keep: Option<&str>, progress: &Progress) -> Result<String, FetchError> {
    let (git_ref, cache) = (remote.git_ref.as_str(), remote.cache.as_path());
    // One fetch into a mirror at a time, across processes too (`netward
    // rollback` beside the daemon).
    let _locked = MirrorLock::take(cache)?;
    // A pinned commit already mirrored needs no server (which may not
    // serve commits by id at all: uploadpack.allowReachableSHA1InWant).
    if let Some(id) = full_id(git_ref) {
        if let Ok(repo) = Repository::open_bare(cache) {
            if repo.find_commit(id).is_ok() {
                return Ok(track(&repo, cache, id)?);
            }
        }
    }
    if packs(cache) > MOST_PACKS {
        return fetch_into_fresh_mirror(remote, keep, progress);
    }
    let repo = mirror(cache)?;
    fetch_into(&repo, cache, remote, progress)
}

/// The fetch itself, into the open mirror at `cache`.
fn fetch_into(repo: &Repository, cache: &Path, remote: &Remote, progress: &Progress) -> Result<String, FetchError> {
    let (url, git_ref, auth) = (remote.url.as_str(), remote.git_ref.as_str(), &remote.auth);
    // A token file that cannot be read is configuration, not weather.
    let token = auth.token().map_err(FetchError::permanent)?;
    let scrub = |e: String| redact(&e, token.as_deref());
    // Each candidate name lands in its own ref, cleared first, so a tag or
    // branch deleted upstream is not mistaken for the tracked one. The
    // objects stay: the last good commit can always be read again.
    let candidates = candidates(git_ref);
    for (_, landing) in &candidates {
        if let Ok(mut r) = repo.find_reference(landing) {
            r.delete().map_err(|e| format!("{}: {}", cache.display(), e.message()))?;
        }
    }
    let specs: Vec<String> = candidates.iter().map(|(src, dst)| format!("+{src}:{dst}")).collect();
    let fetch = |depth| fetch_specs(repo, url, &specs, auth, token.as_deref(), depth, progress);
    if let Err(e) = fetch(Some(1)) {
        // libgit2's local transport (file://) does not fetch shallow, and
        // some servers refuse it: fetch whole instead. Anything else (no
        // such host, refused credentials) would fail the same way twice.
        if !e.message().contains("shallow") {
            return Err(FetchError::of_git(scrub(format!("fetch {url}: {}", e.message())), &e));
        }
        fetch(None).map_err(|e| FetchError::of_git(scrub(format!("fetch {url}: {}", e.message())), &e))?;
    }
    let found = candidates.iter().find_map(|(_, dst)| repo.find_reference(dst).ok());
    let Some(found) = found else {
        let tried: Vec<&str> = candidates.iter().map(|(src, _)| src.as_str()).collect();
        return Err(FetchError::permanent(scrub(format!(
            "{git_ref}: not found on {url} (tried {})",
            tried.join(", ")
        ))));
    };
    let commit = found.peel_to_commit().map_err(|e| format!("{git_ref}: {}", e.message()))?;
    Ok(track(repo, cache, commit.id())?)
}

fn track(repo: &Repository, cache: &Path, id: Oid) -> Result<String, String> {
    repo.reference(TRACKED, id, true, "netward fetch").map_err(|e| format!("{}: {}", cache.display(), e.message()))?;
    Ok(id.to_string())
}

/// How many pack files the mirror holds.
fn packs(cache: &Path) -> usize {
    let Ok(dir) = std::fs::read_dir(cache.join("objects/pack")) else { return 0 };
    dir.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".pack")).count()
}

/// `cache` with a suffix on its last component (`/var/lib/repo/` ->
/// `/var/lib/repo.fresh`), beside it and never inside it.
fn beside(cache: &Path, suffix: &str) -> PathBuf {
    let name = cache.file_name().map_or_else(|| "mirror".into(), |n| n.to_string_lossy().into_owned());
    cache.with_file_name(format!("{name}{suffix}"))
}

/// Fetches into a new mirror beside the old one, copies the commit in
/// force into it (so it can still be read and repaired), and swaps it in by
/// renames; the old one stays if anything fails.
fn fetch_into_fresh_mirror(remote: &Remote, keep: Option<&str>, progress: &Progress) -> Result<String, FetchError> {
    let cache = remote.cache.as_path();
    let (fresh, old) = (beside(cache, ".fresh"), beside(cache, ".old"));
    let _ = std::fs::remove_dir_all(&fresh);
    let _ = std::fs::remove_dir_all(&old);
    let id = {
        let repo = mirror(&fresh)?;
        let id = fetch_into(&repo, &fresh, remote, progress)?;
        if let Some(keep) = keep.and_then(full_id) {
            let from =
                Repository::open_bare(cache).map_err(|e| format!("mirror {}: {}", cache.display(), e.message()))?;
            copy_commit(&from, &repo, keep).map_err(|e| format!("mirror {}: {}", fresh.display(), e.message()))?;
        }
        id
    };
    std::fs::rename(cache, &old).map_err(|e| format!("mirror {}: {e}", cache.display()))?;
    if let Err(e) = std::fs::rename(&fresh, cache) {
        let _ = std::fs::rename(&old, cache);
        return Err(format!("mirror {}: {e}", cache.display()).into());
    }
    let _ = std::fs::remove_dir_all(&old);
    tracing::info!(mirror = %cache.display(), "fetched into a fresh mirror (the old one held over {MOST_PACKS} packs)");
    Ok(id)
}

/// Copies a commit and its whole tree (not its parents) between object
/// databases.
fn copy_commit(from: &Repository, to: &Repository, id: Oid) -> Result<(), git2::Error> {
    let (src, dst) = (from.odb()?, to.odb()?);
    let commit = from.find_commit(id)?;
    let mut todo = vec![id, commit.tree_id()];
    while let Some(oid) = todo.pop() {
        if dst.exists(oid) {
            continue;
        }
        let object = src.read(oid)?;
        if object.kind() == ObjectType::Tree {
            let tree = from.find_tree(oid)?;
            // Submodule entries name commits of other repositories.
            todo.extend(tree.iter().filter(|e| e.kind() != Some(ObjectType::Commit)).map(|e| e.id()));
        }
        dst.write(object.kind(), object.data())?;
    }
    Ok(())
}

/// An exclusive lock on a mirror, held while fetching into it: it lasts
/// as long as the open file.
struct MirrorLock {
    _held: std::fs::File,
}

impl MirrorLock {
    fn take(cache: &Path) -> Result<Self, String> {
        let path = beside(cache, ".lock");
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        file.lock().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(MirrorLock { _held: file })
    }
}

/// The mirror, created bare on first use.
fn mirror(cache: &Path) -> Result<Repository, String> {
    let fail = |e: git2::Error| format!("mirror {}: {}", cache.display(), e.message());
    if cache.join("HEAD").exists() {
        return Repository::open_bare(cache).map_err(fail);
    }
    std::fs::create_dir_all(cache).map_err(|e| format!("mirror {}: {e}", cache.display()))?;
    Repository::init_bare(cache).map_err(fail)
}

fn full_id(git_ref: &str) -> Option<Oid> {
    let hex = git_ref.len() == 40 && git_ref.bytes().all(|b| b.is_ascii_hexdigit());
    hex.then(|| Oid::from_str(git_ref).ok()).flatten()
}

/// (remote name, local landing ref) for each way `git_ref` may be meant, in
/// the order `git` resolves a short name (its `ref_rev_parse_rules`): a
/// full name, `HEAD` or a commit id as given; else a tag before a branch,
/// then `refs/NAME` (`pull/7/head`).
fn candidates(git_ref: &str) -> Vec<(String, String)> {
    if full_id(git_ref).is_some() {
        vec![(git_ref.to_string(), format!("{LANDING}commit"))]
    } else if git_ref.starts_with("refs/") || git_ref == "HEAD" {
        vec![(git_ref.to_string(), format!("{LANDING}exact"))]
    } else {
        vec![
            (format!("refs/tags/{git_ref}"), format!("{LANDING}tag")),
            (format!("refs/heads/{git_ref}"), format!("{LANDING}branch")),
            (format!("refs/{git_ref}"), format!("{LANDING}other")),
        ]
    }
}

#[allow(clippy::too_many_arguments)]
fn fetch_specs(
    repo: &Repository,
    url: &str,
    specs: &[String],
    auth: &GitAuth,
    token: Option<&str>,
    depth: Option<i32>,
    progress: &Progress,
) -> Result<(), git2::Error> {
    let mut remote = repo.remote_anonymous(url)?;
    // libgit2 replaces a callback's error with a generic one ("invalid or
    // unknown remote ssh hostkey"); the callback's own reason is kept here.
    let reason = RefCell::new(None);
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(callbacks(url, auth, token, &reason, progress)).download_tags(AutotagOption::None);
    // HTTPS_PROXY, NO_PROXY and http.proxy, as git honours them.
    let mut proxy = ProxyOptions::new();
    proxy.auto();
    opts.proxy_options(proxy);
    if let Some(d) = depth {
        opts.depth(d);
    }
    let fetched = remote.fetch(specs, Some(&mut opts), None);
    drop(opts);
    fetched.map_err(|e| match reason.take() {
        Some(why) => git2::Error::new(e.code(), e.class(), why),
        None => e,
    })
}

/// Credentials and host-key checks. libgit2 asks for credentials again
/// after a refusal; each kind is offered once, so a wrong token or key
/// ends the fetch with a message instead of looping. A token is offered
/// only over HTTP(S): an ssh server asking for a password gets none.
fn callbacks<'a>(
    url: &str,
    auth: &'a GitAuth,
    token: Option<&'a str>,
    reason: &'a RefCell<Option<String>>,
    progress: &'a Progress,
) -> RemoteCallbacks<'a> {
    let fail = move |why: String| {
        let e = git2::Error::from_str(&why);
        *reason.borrow_mut() = Some(why);
        e
    };
    let http = url.starts_with("https://") || url.starts_with("http://");
    let mut cb = RemoteCallbacks::new();
    let mut offered = CredentialType::empty();
    cb.credentials(move |_, user_in_url, allowed| {
        progress.touch();
        let fresh = allowed - offered;
        if fresh.contains(CredentialType::USERNAME) {
            offered |= CredentialType::USERNAME;
            return Cred::username(user_in_url.unwrap_or("git"));
        }
        if fresh.contains(CredentialType::SSH_KEY) {
            offered |= CredentialType::SSH_KEY;
            let user = user_in_url.unwrap_or("git");
            return match &auth.ssh_key {
                Some(key) => Cred::ssh_key(user, None, key, None),
                None => Cred::ssh_key_from_agent(user),
            };
        }
        if http && fresh.contains(CredentialType::USER_PASS_PLAINTEXT) {
            offered |= CredentialType::USER_PASS_PLAINTEXT;
            // A user in the URL (GitLab deploy tokens, Bitbucket app
            // passwords) goes with the token; else --git-token-user.
            let user = user_in_url.unwrap_or(&auth.token_user);
            return match token {
                Some(t) => Cred::userpass_plaintext(user, t),
                None => Err(fail(
                    "the server asks for credentials and none are configured (--git-token-file or --git-token-env)"
                        .into(),
                )),
            };
        }
        let what = if !http || allowed.contains(CredentialType::SSH_KEY) {
            match &auth.ssh_key {
                Some(k) => format!("the server refused the ssh key {}", k.display()),
                None => "the server refused every key ssh-agent holds (give --ssh-key)".into(),
            }
        } else if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            format!("the server refused the credentials ({})", auth.token_origin())
        } else {
            format!("the server asks for credentials netward cannot give ({allowed:?})")
        };
        Err(fail(what))
    });
    cb.transfer_progress(move |_| {
        progress.touch();
        true
    });
    cb.sideband_progress(move |_| {
        progress.touch();
        true
    });
    let port = known_hosts::ssh_port(url);
    cb.certificate_check(move |cert, host| {
        progress.touch();
        let (Some(key), Some(file)) = (cert.as_hostkey(), &auth.known_hosts) else {
            // TLS certificates, or ssh without a known_hosts file of our
            // own: libgit2's checks decide (the CA store; ~/.ssh/known_hosts).
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        let Some(blob) = key.hostkey() else {
            return Err(fail("the ssh server's host key could not be read".into()));
        };
        let text = std::fs::read_to_string(file).map_err(|e| fail(format!("known_hosts {}: {e}", file.display())))?;
        known_hosts::check(&text, host, port, blob)
            .map(|()| CertificateCheckStatus::CertificateOk)
            .map_err(|e| fail(format!("{e} (known_hosts {})", file.display())))
    });
    cb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_name_is_a_tag_before_a_branch_as_in_git_and_full_names_are_taken_as_given() {
        let names = |r: &str| candidates(r).into_iter().map(|(s, _)| s).collect::<Vec<_>>();
        assert_eq!(names("main"), ["refs/tags/main", "refs/heads/main", "refs/main"]);
        assert_eq!(names("pull/7/head"), ["refs/tags/pull/7/head", "refs/heads/pull/7/head", "refs/pull/7/head"]);
        assert_eq!(names("refs/pull/7/head"), ["refs/pull/7/head"]);
        assert_eq!(names("HEAD"), ["HEAD"], "the remote's default branch");
        let id = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(names(id), [id]);
        assert_eq!(names("0123abc").len(), 3, "short ids are names");
        let landings: std::collections::BTreeSet<String> =
            ["main", "refs/x", id].iter().flat_map(|r| candidates(r)).map(|(_, d)| d).collect();
        assert_eq!(landings.len(), 5, "every way of naming lands in its own ref");
    }

    fn remote(url: &str, git_ref: &str, cache: &Path) -> Remote {
        Remote { url: url.into(), git_ref: git_ref.into(), cache: cache.into(), auth: GitAuth::default() }
    }

    /// A server bound but never accepting: the kernel completes the
    /// connection and takes the request, and no answer ever comes, as from a
    /// hung server. Dropping it resets the queued connection.
    fn silent_server() -> (std::net::TcpListener, String) {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://127.0.0.1:{}/policies.git", silent.local_addr().expect("addr").port());
        (silent, url)
    }

    #[test]
    fn a_server_that_never_answers_costs_one_time_limit_and_one_fetch_at_a_time() {
        let (silent, url) = silent_server();
        let dir = std::env::temp_dir().join(format!("netward-silent-{}", std::process::id()));
        let f = Fetcher::new(Duration::from_millis(300));
        let t = Instant::now();
        let e = f.fetch(&remote(&url, "main", &dir), None).unwrap_err();
        assert!(e.message.contains("no answer within 0.3 s"), "{e}");
        assert!(e.retryable, "a server that does not answer may answer later");
        assert!(t.elapsed() < Duration::from_secs(2), "gave up after {:?}", t.elapsed());
        assert!(f.waiting().is_some());
        // The hung fetch is joined, not doubled: the same silence is reported at once.
        let t = Instant::now();
        let e = f.fetch(&remote(&url, "main", &dir), None).unwrap_err();
        assert!(e.message.contains("the fetch in progress has heard nothing from the server for"), "{e}");
        assert!(t.elapsed() < Duration::from_millis(200));
        // The server goes away (its queued connection is reset): the hung
        // fetch ends, is no longer waiting, and its own error is the answer.
        drop(silent);
        let deadline = Instant::now() + Duration::from_secs(10);
        while f.waiting().is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(f.waiting().is_none(), "the ended fetch still counts as waiting");
        let e = f.fetch(&remote(&url, "main", &dir), None).unwrap_err();
        assert!(
            !e.message.contains("no answer") && !e.message.contains("heard nothing"),
            "the ended fetch's own error: {e}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_caller_that_stops_waiting_is_woken_when_the_fetch_ends_and_gets_its_result() {
        let (silent, url) = silent_server();
        let dir = std::env::temp_dir().join(format!("netward-unwaited-{}", std::process::id()));
        let (tx, wakes) = mpsc::channel();
        let f = Fetcher::waking(Duration::from_secs(30), Arc::new(move || tx.send(()).is_ok()));
        let t = Instant::now();
        let attempt = |wait| f.attempt(&remote(&url, "main", &dir), None, Some(wait));
        assert_eq!(attempt(Duration::from_millis(100)), Attempt::Running);
        assert!(t.elapsed() < Duration::from_secs(1), "waited {:?} of a 30 s limit", t.elapsed());
        assert_eq!(attempt(Duration::ZERO), Attempt::Running, "joined, not started again");
        assert!(wakes.try_recv().is_err(), "no wake while it runs");
        drop(silent);
        assert_eq!(wakes.recv_timeout(Duration::from_secs(10)), Ok(()), "its end wakes the loop");
        match attempt(Duration::ZERO) {
            Attempt::Done(Err(e)) => assert!(!e.message.contains("heard nothing"), "the fetch's own end: {e}"),
            other => panic!("the ended fetch's result is taken: {other:?}"),
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A repository with two commits on main (the first holds
    /// `policies/a.yaml`, the second nothing) and a tag `v1` on the first.
    fn upstream(dir: &Path) -> (Repository, git2::Oid, git2::Oid) {
        let repo = Repository::init(dir).expect("init");
        let sig = git2::Signature::now("t", "t@example.org").expect("signature");
        let blob = repo.blob(b"kind: NetworkPolicy\n").expect("blob");
        let mut inner = repo.treebuilder(None).expect("builder");
        inner.insert("a.yaml", blob, 0o100644).expect("insert");
        let mut outer = repo.treebuilder(None).expect("builder");
        outer.insert("policies", inner.write().expect("tree"), 0o040000).expect("insert");
        let full = repo.find_tree(outer.write().expect("tree")).expect("tree");
        let empty = repo.find_tree(repo.treebuilder(None).expect("builder").write().expect("tree")).expect("tree");
        let first = repo.commit(Some("refs/heads/main"), &sig, &sig, "first", &full, &[]).expect("commit");
        let parent = repo.find_commit(first).expect("first");
        let second = repo.commit(Some("refs/heads/main"), &sig, &sig, "second", &empty, &[&parent]).expect("commit");
        repo.set_head("refs/heads/main").expect("HEAD");
        repo.tag_lightweight("v1", &repo.find_object(first, None).expect("obj"), false).expect("tag");
        drop((full, empty, parent, inner, outer));
        (repo, first, second)
    }

    #[test]
    fn file_urls_fetch_branches_tags_and_ids_and_a_vanished_ref_is_not_remembered() {
        let dir = std::env::temp_dir().join(format!("netward-fetch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (repo, first, second) = upstream(&dir.join("up"));
        let (url, cache) = (format!("file://{}", dir.join("up").display()), dir.join("cache"));
        assert_eq!(fetch(&remote(&url, "main", &cache), None), Ok(second.to_string()));
        // libgit2's local transport refuses depth: the fallback fetched whole.
        assert!(!cache.join("shallow").exists());
        assert_eq!(fetch(&remote(&url, "v1", &cache), None), Ok(first.to_string()), "a tag");
        assert_eq!(fetch(&remote(&url, "refs/heads/main", &cache), None), Ok(second.to_string()));
        assert_eq!(fetch(&remote(&url, "HEAD", &cache), None), Ok(second.to_string()), "the remote's HEAD");
        assert_eq!(fetch(&remote(&url, &first.to_string(), &cache), None), Ok(first.to_string()), "a commit id");
        // A branch named like the tag: the tag wins, as in git.
        repo.branch("v1", &repo.find_commit(second).expect("second"), false).expect("branch");
        assert_eq!(fetch(&remote(&url, "v1", &cache), None), Ok(first.to_string()));
        // The tag is deleted upstream: the branch is found, not the stale tag.
        repo.tag_delete("v1").expect("delete");
        assert_eq!(fetch(&remote(&url, "v1", &cache), None), Ok(second.to_string()));
        // A mirrored commit pinned by id needs no server at all.
        assert_eq!(fetch(&remote("file:///nonexistent/repo", &first.to_string(), &cache), None), Ok(first.to_string()));
        let e = fetch(&remote(&url, "nope", &cache), None).unwrap_err();
        assert!(e.message.contains("nope: not found on") && e.message.contains("refs/tags/nope"), "{e}");
        assert!(!e.retryable, "a ref that does not exist is not retried soon");
        let mirror = Repository::open_bare(&cache).expect("mirror");
        assert_eq!(mirror.refname_to_id(TRACKED).expect("tracked"), first, "a failed fetch moves nothing");
        drop(mirror);
        // A mirror with too many packs is fetched afresh beside the old one
        // (even when named with a trailing slash), and the commit in force
        // is carried over: its files can still be read.
        for i in 0..=MOST_PACKS {
            std::fs::write(cache.join(format!("objects/pack/pack-junk{i}.pack")), "").expect("write");
        }
        let slashed = PathBuf::from(format!("{}/", cache.display()));
        let keep = first.to_string();
        assert_eq!(fetch(&remote(&url, "main", &slashed), Some(&keep)), Ok(second.to_string()));
        assert!(packs(&cache) <= 2, "{} packs", packs(&cache));
        let mirror = Repository::open_bare(&cache).expect("mirror");
        let kept = crate::git::files_at(&mirror, first, "policies").expect("the commit in force reads");
        assert_eq!(kept, [("policies/a.yaml".to_string(), "kind: NetworkPolicy\n".to_string())]);
        drop(mirror);
        assert!(!beside(&cache, ".fresh").exists() && !beside(&cache, ".old").exists(), "nothing left beside");
        assert!(fetch(&remote("file:///nonexistent/repo", "main", &cache), None).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
