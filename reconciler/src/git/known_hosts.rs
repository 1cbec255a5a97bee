//! Checking an ssh server's host key against a known_hosts file (the
//! format of sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): plain and hashed
//! (`|1|salt|hash`) host names, `[host]:port`, `*`/`?` patterns, `!`
//! negations and `@revoked` keys. Host certificates are not checked
//! (`@cert-authority` lines are skipped; a server presenting a certificate
//! is refused). libssh2 prefers ed25519, then ecdsa, then rsa host keys,
//! without looking at this file: list the server's key of the first kind
//! it has (`ssh-keyscan HOST` prints them all).

use hmac::{Hmac, Mac};
use sha2::Digest;

use super::auth::{base64, unbase64};

/// The port an ssh URL connects to (22 unless `ssh://host:port/...` says).
pub fn ssh_port(url: &str) -> u16 {
    let Some(rest) = url.strip_prefix("ssh://").or_else(|| url.strip_prefix("git+ssh://")) else { return 22 };
    let authority = rest.split('/').next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // `[::1]:2222` or `host:2222`.
    let port = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once("]:").map(|(_, p)| p),
        None => host_port.split_once(':').map(|(_, p)| p),
    };
    port.and_then(|p| p.parse().ok()).unwrap_or(22)
}

/// The key type an ssh wire-format public key names in its first field.
pub fn key_type(key: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(key.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(key.get(4..4 + len)?).ok()
}

/// Ok when `text` lists `key` (an ssh wire-format public key) for `host`
/// at `port`, and has not revoked it.
pub fn check(text: &str, host: &str, port: u16, key: &[u8]) -> Result<(), String> {
    let kind = key_type(key).unwrap_or("unknown");
    // ssh compares names in lower case (hashed ones too).
    let host = host.to_lowercase();
    let name = if port == 22 { host } else { format!("[{host}]:{port}") };
    let presented = base64(key);
    let mut listed_for_host: Vec<&str> = Vec::new();
    let mut accepted = false;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut fields = line.split_whitespace();
        let mut first = fields.next().unwrap_or("");
        let marker = first.strip_prefix('@');
        if marker.is_some() {
            first = fields.next().unwrap_or("");
        }
        let (Some(line_kind), Some(line_key)) = (fields.next(), fields.next()) else { continue };
        if marker.is_some_and(|m| m != "revoked") || !hosts_match(first, &name) {
            continue;
        }
        let same = line_kind == kind && line_key == presented;
        if marker == Some("revoked") {
            if same {
                return Err(format!("the host key of {name} ({kind} {}) is revoked", fingerprint(key)));
            }
            continue;
        }
        listed_for_host.push(line_kind);
        accepted |= same;
    }
    if accepted {
        Ok(())
    } else if listed_for_host.is_empty() {
        Err(format!("{name} is not a known host"))
    } else {
        Err(format!(
            "the host key of {name} does not match: the server sent {kind} {}, known_hosts lists {} for it",
            fingerprint(key),
            listed_for_host.join(", ")
        ))
    }
}

/// `SHA256:...` as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &[u8]) -> String {
    format!("SHA256:{}", base64(&sha2::Sha256::digest(key)).trim_end_matches('='))
}

/// Whether a comma-separated host pattern list matches `name`: some
/// pattern matches and no negated one does.
fn hosts_match(patterns: &str, name: &str) -> bool {
    if let Some(hashed) = patterns.strip_prefix("|1|") {
        return hashed_match(hashed, name);
    }
    let mut matched = false;
    for p in patterns.split(',') {
        match p.strip_prefix('!') {
            Some(neg) if glob(neg, name) => return false,
            Some(_) => {}
            None => matched |= glob(p, name),
        }
    }
    matched
}

/// `salt|hash`: HMAC-SHA1 of the name keyed with the salt (ssh's HashKnownHosts).
fn hashed_match(salt_and_hash: &str, name: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else { return false };
    let (Some(salt), Some(hash)) = (unbase64(salt), unbase64(hash)) else { return false };
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(&salt) else { return false };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// ssh's patterns: `*` any run, `?` any one character; names compare
/// without regard to case.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) =
        (pattern.to_lowercase().chars().collect(), name.to_lowercase().chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    // GitHub's published ed25519 host key, and another ed25519 key.
    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const OTHER: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIBAHZzdg3KfGzSqTcnhuyBQ4kFsSMD1+l1q0fWMzPl8E";

    fn key(k: &str) -> Vec<u8> {
        unbase64(k).expect("base64")
    }

    #[test]
    fn ports_come_from_ssh_urls_only() {
        assert_eq!(ssh_port("ssh://git@github.com/org/repo.git"), 22);
        assert_eq!(ssh_port("ssh://git@127.0.0.1:2222/srv/repo.git"), 2222);
        assert_eq!(ssh_port("ssh://[::1]:2200/repo"), 2200);
        assert_eq!(ssh_port("git@github.com:org/repo.git"), 22, "scp-style URLs have no port");
        assert_eq!(ssh_port("https://example.org:8443/repo"), 22);
    }

    #[test]
    fn a_listed_key_is_accepted_and_anything_else_refused_with_why() {
        let text = format!("# comment\n\ngithub.com,gh ssh-ed25519 {KEY}\n[127.0.0.1]:2222 ssh-ed25519 {OTHER}\n");
        assert_eq!(check(&text, "github.com", 22, &key(KEY)), Ok(()));
        assert_eq!(check(&text, "GH", 22, &key(KEY)), Ok(()), "names compare without case");
        assert_eq!(check(&text, "127.0.0.1", 2222, &key(OTHER)), Ok(()));
        let e = check(&text, "127.0.0.1", 22, &key(OTHER)).unwrap_err();
        assert_eq!(e, "127.0.0.1 is not a known host", "port 22 is not port 2222");
        let e = check(&text, "github.com", 22, &key(OTHER)).unwrap_err();
        assert!(e.contains("does not match") && e.contains(&fingerprint(&key(OTHER))), "{e}");
        let rsa = [&[0u8, 0, 0, 7][..], b"ssh-rsa", &[1, 0, 1]].concat();
        let e = check(&text, "github.com", 22, &rsa).unwrap_err();
        assert!(e.contains("sent ssh-rsa") && e.contains("lists ssh-ed25519"), "{e}");
        // The type comes from the key itself (libgit2 misnames nistp521 keys).
        let p521 = [&[0u8, 0, 0, 19][..], b"ecdsa-sha2-nistp521", &[9]].concat();
        assert_eq!(key_type(&p521), Some("ecdsa-sha2-nistp521"));
        assert_eq!(key_type(&[0, 0, 0, 9, b's']), None, "a short key has no type");
    }

    #[test]
    fn hashed_names_patterns_negations_and_revocations() {
        // `ssh-keygen -H` of "github.com" with this salt.
        let salt = [7u8; 20];
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&salt).expect("key");
        mac.update(b"github.com");
        let hashed = format!("|1|{}|{}", base64(&salt), base64(&mac.finalize().into_bytes()));
        let text = format!("{hashed} ssh-ed25519 {KEY}\n");
        assert_eq!(check(&text, "github.com", 22, &key(KEY)), Ok(()));
        assert_eq!(check(&text, "GitHub.com", 22, &key(KEY)), Ok(()), "hashed names are of the lower-case name");
        assert!(check(&text, "gitlab.com", 22, &key(KEY)).is_err());

        let text = format!("*.example.org,!evil.example.org ssh-ed25519 {KEY}\n");
        assert_eq!(check(&text, "git.example.org", 22, &key(KEY)), Ok(()));
        assert!(check(&text, "evil.example.org", 22, &key(KEY)).is_err());
        assert!(glob("git?.ex*", "git1.example") && !glob("git?.ex*", "git12.example"));

        let text = format!("git.example.org ssh-ed25519 {KEY}\n@revoked * ssh-ed25519 {KEY}\n");
        let e = check(&text, "git.example.org", 22, &key(KEY)).unwrap_err();
        assert!(e.contains("revoked"), "{e}");
        let text = format!("@cert-authority *.example.org ssh-ed25519 {KEY}\n");
        assert!(check(&text, "git.example.org", 22, &key(KEY)).is_err(), "CA keys are not host keys");
        let text = format!("@future-marker git.example.org ssh-ed25519 {KEY}\n");
        assert!(check(&text, "git.example.org", 22, &key(KEY)).is_err(), "an unknown marker is not a plain line");
    }
}
