//! Fetching the tracked ref of a remote repository into a bare mirror:
//! only that ref, shallow (depth 1) where the transport allows, credentials
//! from callbacks. `file://`, `https://`, `http://`, `ssh://` and scp-style
//! `user@host:path` URLs, all through libgit2.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use git2::{AutotagOption, CertificateCheckStatus, Cred, CredentialType, FetchOptions, RemoteCallbacks, Repository};

use super::auth::{redact, GitAuth};
use super::known_hosts;

/// Where fetched refs land in the mirror, one per way of naming the ref.
const LANDING: &str = "refs/netward/fetch/";
/// The commit last fetched for the tracked ref.
pub const TRACKED: &str = "refs/netward/tracked";

/// Fetches with a time limit. libgit2 has no per-fetch timeout (its global
/// socket timeouts are `unsafe` to set, and netward keeps `unsafe` to the
/// netlink crate), and a server that accepts and then says nothing holds a
/// fetch forever; so each fetch runs on its own thread and the loop waits
/// at most `timeout` for it. A fetch that overstays is left to finish on
/// its own; no second one is started meanwhile (they would fight over the
/// mirror's lock files), and each pass reports how long it has waited.
#[derive(Debug)]
pub struct Fetcher {
    pub timeout: Duration,
    in_flight: Mutex<Option<InFlight>>,
}

#[derive(Debug)]
struct InFlight {
    since: Instant,
    done: Receiver<Result<String, String>>,
}

impl Fetcher {
    pub fn new(timeout: Duration) -> Self {
        Fetcher { timeout, in_flight: Mutex::new(None) }
    }

    /// [`fetch`], within the time limit.
    pub fn fetch(&self, url: &str, git_ref: &str, cache: &Path, auth: &GitAuth) -> Result<String, String> {
        let mut slot = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = slot.take() {
            // A result that arrives late is stale by now: fetch afresh.
            if let Err(TryRecvError::Empty) = f.done.try_recv() {
                let waited = f.since.elapsed().as_secs();
                *slot = Some(f);
                return Err(redact(
                    &format!("fetch {url}: the fetch started {waited} s ago has had no answer yet"),
                    None,
                ));
            }
        }
        let (tx, done) = mpsc::channel();
        let (u, r, c, a): (String, String, PathBuf, GitAuth) = (url.into(), git_ref.into(), cache.into(), auth.clone());
        std::thread::Builder::new()
            .name("git-fetch".into())
            .spawn(move || {
                let _ = tx.send(fetch(&u, &r, &c, &a));
            })
            .map_err(|e| format!("fetch {url}: cannot start a thread: {e}"))?;
        match done.recv_timeout(self.timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => {
                *slot = Some(InFlight { since: Instant::now() - self.timeout, done });
                Err(redact(
                    &format!("fetch {url}: no answer within {} s (--fetch-timeout)", self.timeout.as_secs_f64()),
                    None,
                ))
            }
            Err(RecvTimeoutError::Disconnected) => Err(redact(&format!("fetch {url}: the fetch thread failed"), None)),
        }
    }

    /// How long an overdue fetch has been waiting, if one is.
    pub fn waiting(&self) -> Option<Duration> {
        let slot = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().map(|f| f.since.elapsed())
    }
}

/// Fetches `git_ref` (a branch, tag, full ref name or full commit id) from
/// `url` into the bare mirror at `cache` and returns its commit id.
pub fn fetch(url: &str, git_ref: &str, cache: &Path, auth: &GitAuth) -> Result<String, String> {
    let token = auth.token()?;
    let scrub = |e: String| redact(&e, token.as_deref());
    let repo = mirror(cache)?;
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
    let shallow = fetch_specs(&repo, url, &specs, auth, token.as_deref(), Some(1));
    if let Err(e) = shallow {
        // libgit2's local transport (file://) does not fetch shallow, and
        // some servers refuse it: fetch whole instead. Anything else (no
        // such host, refused credentials) fails the same way twice.
        if !e.contains("shallow") {
            return Err(scrub(e));
        }
        fetch_specs(&repo, url, &specs, auth, token.as_deref(), None).map_err(scrub)?;
    }
    let found = candidates.iter().find_map(|(_, dst)| repo.find_reference(dst).ok());
    let Some(found) = found else {
        let tried: Vec<&str> = candidates.iter().map(|(src, _)| src.as_str()).collect();
        return Err(scrub(format!("{git_ref}: not found on {url} (tried {})", tried.join(", "))));
    };
    let commit = found.peel_to_commit().map_err(|e| format!("{git_ref}: {}", e.message()))?;
    repo.reference(TRACKED, commit.id(), true, "netward fetch")
        .map_err(|e| format!("{}: {}", cache.display(), e.message()))?;
    Ok(commit.id().to_string())
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

/// (remote name, local landing ref) for each way `git_ref` may be meant, in
/// the order `git` itself resolves a short name: a full name or a commit id
/// as given, else a branch before a tag.
fn candidates(git_ref: &str) -> Vec<(String, String)> {
    let is_id = git_ref.len() == 40 && git_ref.bytes().all(|b| b.is_ascii_hexdigit());
    if is_id {
        vec![(git_ref.to_string(), format!("{LANDING}commit"))]
    } else if git_ref.starts_with("refs/") {
        vec![(git_ref.to_string(), format!("{LANDING}exact"))]
    } else {
        vec![
            (format!("refs/heads/{git_ref}"), format!("{LANDING}branch")),
            (format!("refs/tags/{git_ref}"), format!("{LANDING}tag")),
        ]
    }
}

fn fetch_specs(
    repo: &Repository,
    url: &str,
    specs: &[String],
    auth: &GitAuth,
    token: Option<&str>,
    depth: Option<i32>,
) -> Result<(), String> {
    let mut remote = repo.remote_anonymous(url).map_err(|e| format!("{url}: {}", e.message()))?;
    // libgit2 replaces a callback's error with a generic one ("invalid or
    // unknown remote ssh hostkey"); the callback's own reason is kept here.
    let reason = RefCell::new(None);
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(callbacks(url, auth, token, &reason)).download_tags(AutotagOption::None);
    if let Some(d) = depth {
        opts.depth(d);
    }
    let fetched = remote.fetch(specs, Some(&mut opts), None);
    drop(opts);
    fetched.map_err(|e| format!("fetch {url}: {}", reason.take().unwrap_or_else(|| e.message().to_string())))
}

/// Credentials and host-key checks. libgit2 asks for credentials again
/// after a refusal; each kind is offered once, so a wrong token or key
/// ends the fetch with a message instead of looping.
fn callbacks<'a>(
    url: &str,
    auth: &'a GitAuth,
    token: Option<&'a str>,
    reason: &'a RefCell<Option<String>>,
) -> RemoteCallbacks<'a> {
    let fail = move |why: String| {
        let e = git2::Error::from_str(&why);
        *reason.borrow_mut() = Some(why);
        e
    };
    let mut cb = RemoteCallbacks::new();
    let mut offered = CredentialType::empty();
    cb.credentials(move |_, user_in_url, allowed| {
        let user = user_in_url.unwrap_or("git");
        let fresh = allowed - offered;
        if fresh.contains(CredentialType::USERNAME) {
            offered |= CredentialType::USERNAME;
            return Cred::username(user);
        }
        if fresh.contains(CredentialType::SSH_KEY) {
            offered |= CredentialType::SSH_KEY;
            return match &auth.ssh_key {
                Some(key) => Cred::ssh_key(user, None, key, None),
                None => Cred::ssh_key_from_agent(user),
            };
        }
        if fresh.contains(CredentialType::USER_PASS_PLAINTEXT) {
            offered |= CredentialType::USER_PASS_PLAINTEXT;
            return match token {
                Some(t) => Cred::userpass_plaintext(&auth.token_user, t),
                None => Err(fail(
                    "the server asks for credentials and none are configured (--git-token-file or --git-token-env)"
                        .into(),
                )),
            };
        }
        let what = if allowed.contains(CredentialType::SSH_KEY) {
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
    let port = known_hosts::ssh_port(url);
    cb.certificate_check(move |cert, host| {
        let (Some(key), Some(file)) = (cert.as_hostkey(), &auth.known_hosts) else {
            // TLS certificates, or ssh without a known_hosts file of our
            // own: libgit2's checks decide (the CA store; ~/.ssh/known_hosts).
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        let (Some(kind), Some(blob)) = (key.hostkey_type(), key.hostkey()) else {
            return Err(fail("the ssh server's host key could not be read".into()));
        };
        let text = std::fs::read_to_string(file).map_err(|e| fail(format!("known_hosts {}: {e}", file.display())))?;
        known_hosts::check(&text, host, port, kind.name(), blob)
            .map(|()| CertificateCheckStatus::CertificateOk)
            .map_err(|e| fail(format!("{e} (known_hosts {})", file.display())))
    });
    cb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_name_is_a_branch_before_a_tag_and_full_names_are_taken_as_given() {
        let names = |r: &str| candidates(r).into_iter().map(|(s, _)| s).collect::<Vec<_>>();
        assert_eq!(names("main"), ["refs/heads/main", "refs/tags/main"]);
        assert_eq!(names("refs/pull/7/head"), ["refs/pull/7/head"]);
        let id = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(names(id), [id]);
        assert_eq!(names("0123abc"), ["refs/heads/0123abc", "refs/tags/0123abc"], "short ids are names");
        let landings: std::collections::BTreeSet<String> =
            ["main", "refs/x", id].iter().flat_map(|r| candidates(r)).map(|(_, d)| d).collect();
        assert_eq!(landings.len(), 4, "every way of naming lands in its own ref");
    }

    #[test]
    fn a_server_that_never_answers_costs_one_time_limit_and_one_fetch_at_a_time() {
        // Bound but never accepting: the kernel completes the connection and
        // takes the request, and no answer ever comes, as from a hung server.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://127.0.0.1:{}/policies.git", silent.local_addr().expect("addr").port());
        let dir = std::env::temp_dir().join(format!("netward-silent-{}", std::process::id()));
        let f = Fetcher::new(Duration::from_millis(300));
        let t = Instant::now();
        let e = f.fetch(&url, "main", &dir, &GitAuth::default()).unwrap_err();
        assert!(e.contains("no answer within 0.3 s"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2), "gave up after {:?}", t.elapsed());
        assert!(f.waiting().is_some());
        // The hung fetch is not joined by a second one.
        let e = f.fetch(&url, "main", &dir, &GitAuth::default()).unwrap_err();
        assert!(e.contains("has had no answer yet"), "{e}");
        // The server goes away (its queued connection is reset): the hung
        // fetch ends, and the next call fetches afresh (and is refused).
        drop(silent);
        let deadline = Instant::now() + Duration::from_secs(10);
        let e = loop {
            let e = f.fetch(&url, "main", &dir, &GitAuth::default()).unwrap_err();
            if !e.contains("no answer yet") || Instant::now() > deadline {
                break e;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!e.contains("no answer"), "a fresh fetch, refused at once: {e}");
        assert!(f.waiting().is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A repository with two commits on main, a tag `v1` on the first, and
    /// a branch also called `v1` on the second.
    fn upstream(dir: &Path) -> (Repository, git2::Oid, git2::Oid) {
        let repo = Repository::init(dir).expect("init");
        let sig = git2::Signature::now("t", "t@example.org").expect("signature");
        let tree = repo.find_tree(repo.index().expect("index").write_tree().expect("tree")).expect("tree");
        let first = repo.commit(Some("refs/heads/main"), &sig, &sig, "first", &tree, &[]).expect("commit");
        let parent = repo.find_commit(first).expect("first");
        let second = repo.commit(Some("refs/heads/main"), &sig, &sig, "second", &tree, &[&parent]).expect("commit");
        repo.tag_lightweight("v1", &repo.find_object(first, None).expect("obj"), false).expect("tag");
        drop((tree, parent));
        (repo, first, second)
    }

    #[test]
    fn file_urls_fetch_branches_tags_and_ids_and_a_vanished_ref_is_not_remembered() {
        let dir = std::env::temp_dir().join(format!("netward-fetch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (repo, first, second) = upstream(&dir.join("up"));
        let (url, cache, auth) =
            (format!("file://{}", dir.join("up").display()), dir.join("cache"), GitAuth::default());
        assert_eq!(fetch(&url, "main", &cache, &auth), Ok(second.to_string()));
        // libgit2's local transport refuses depth: the fallback fetched whole.
        assert!(!cache.join("shallow").exists());
        assert_eq!(fetch(&url, "v1", &cache, &auth), Ok(first.to_string()), "a tag");
        assert_eq!(fetch(&url, "refs/heads/main", &cache, &auth), Ok(second.to_string()));
        assert_eq!(fetch(&url, &first.to_string(), &cache, &auth), Ok(first.to_string()), "a commit id");
        // A branch named like the tag wins, as in git.
        repo.branch("v1", &repo.find_commit(second).expect("second"), false).expect("branch");
        assert_eq!(fetch(&url, "v1", &cache, &auth), Ok(second.to_string()));
        // The branch is deleted upstream: the tag is found again, not the stale branch.
        repo.find_branch("v1", git2::BranchType::Local).expect("branch").delete().expect("delete");
        assert_eq!(fetch(&url, "v1", &cache, &auth), Ok(first.to_string()));
        let e = fetch(&url, "nope", &cache, &auth).unwrap_err();
        assert!(e.contains("nope: not found on") && e.contains("refs/tags/nope"), "{e}");
        let mirror = Repository::open_bare(&cache).expect("mirror");
        assert_eq!(mirror.refname_to_id(TRACKED).expect("tracked"), first, "a failed fetch moves nothing");
        assert!(fetch("file:///nonexistent/repo", "main", &cache, &auth).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
