//! Credentials for a remote repository, and keeping them out of messages.

use std::path::PathBuf;

/// How to authenticate to a remote repository. Secrets are read from their
/// files at every fetch (a rotated token is picked up without a restart) and
/// reach libgit2 only through its credential callback: never a command line
/// (visible in `ps`), never the mirror's config on disk.
#[derive(Clone, Debug, Default)]
pub struct GitAuth {
    /// HTTPS: a file holding a token (or a password), sent as HTTP Basic
    /// `token_user:token` when the server asks.
    pub token_file: Option<PathBuf>,
    /// HTTPS: the name of an environment variable holding the token instead.
    pub token_env: Option<String>,
    /// The user sent with the token (GitHub: `x-access-token`; GitLab: `oauth2`).
    pub token_user: String,
    /// SSH: the private key to use (and no other); without one, ssh-agent.
    pub ssh_key: Option<PathBuf>,
    /// SSH: accept only a host key listed in this known_hosts file.
    pub known_hosts: Option<PathBuf>,
}

impl GitAuth {
    /// The token, read now; `None` when none is configured.
    pub fn token(&self) -> Result<Option<String>, String> {
        let (token, from) = match (&self.token_file, &self.token_env) {
            (Some(f), _) => (
                std::fs::read_to_string(f).map_err(|e| format!("token file {}: {e}", f.display()))?,
                f.display().to_string(),
            ),
            (None, Some(var)) => {
                (std::env::var(var).map_err(|_| format!("token variable {var}: not set"))?, format!("variable {var}"))
            }
            (None, None) => return Ok(None),
        };
        let token = token.trim();
        if token.is_empty() {
            return Err(format!("token {from}: empty"));
        }
        Ok(Some(token.to_string()))
    }

    /// Where the token comes from, for messages.
    pub fn token_origin(&self) -> String {
        match (&self.token_file, &self.token_env) {
            (Some(f), _) => format!("token file {}", f.display()),
            (None, Some(v)) => format!("token variable {v}"),
            (None, None) => "no token".into(),
        }
    }
}

/// `text` with every credential blanked: the password of a URL's userinfo
/// (`https://user:secret@host`), the user of an HTTP(S) URL that has no
/// password (`https://TOKEN@github.com/...`, as GitHub documents), and the
/// token itself, wherever it was echoed. An ssh user (`ssh://git@`) stays.
pub fn redact(text: &str, token: Option<&str>) -> String {
    let mut secrets: Vec<&str> = token.into_iter().collect();
    for (i, _) in text.match_indices("://") {
        let http = text[..i].ends_with("http") || text[..i].ends_with("https");
        let tail = &text[i + 3..];
        let end = tail.find(|c: char| c.is_whitespace() || "/'\"".contains(c)).unwrap_or(tail.len());
        let Some((userinfo, _)) = tail[..end].rsplit_once('@') else { continue };
        match userinfo.split_once(':') {
            Some((_, password)) => secrets.push(password),
            None if http => secrets.push(userinfo),
            None => {}
        }
    }
    let mut out = text.to_string();
    for s in secrets.into_iter().filter(|s| !s.is_empty()) {
        out = out.replace(s, "***");
    }
    out
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648).
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The inverse of [`base64`]; `None` for anything that is not base64.
pub fn unbase64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_blanked_in_messages() {
        let msg = "fetch https://bot:hunter2@git.example.org/p.git main: 'hunter2' ssh://git@host/x file:///tmp/a@b";
        let out = redact(msg, Some("tok3n"));
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains("https://bot:***@git.example.org/p.git"), "{out}");
        assert!(
            out.contains("ssh://git@host/x") && out.contains("file:///tmp/a@b"),
            "a user alone is no secret: {out}"
        );
        assert_eq!(redact("remote said tok3n twice: tok3n", Some("tok3n")), "remote said *** twice: ***");
        let token_as_user = redact("fetch https://ghp_abc123@github.com/o/r.git: 404", None);
        assert_eq!(token_as_user, "fetch https://***@github.com/o/r.git: 404");
    }

    #[test]
    fn base64_matches_rfc_4648_both_ways() {
        for (plain, coded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(plain.as_bytes()), coded);
            assert_eq!(unbase64(coded).as_deref(), Some(plain.as_bytes()));
        }
        assert_eq!(unbase64("not base64!"), None);
    }

    #[test]
    fn a_token_is_read_at_each_call_and_an_empty_one_is_an_error() {
        let dir = std::env::temp_dir().join(format!("netward-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("token");
        let auth = GitAuth { token_file: Some(file.clone()), ..GitAuth::default() };
        assert!(auth.token().is_err(), "a missing file is an error");
        std::fs::write(&file, "first\n").expect("write");
        assert_eq!(auth.token(), Ok(Some("first".into())));
        std::fs::write(&file, "second\n").expect("write");
        assert_eq!(auth.token(), Ok(Some("second".into())), "a rotated token is read again");
        std::fs::write(&file, "  \n").expect("write");
        assert!(auth.token().is_err_and(|e| e.contains("empty")));
        assert_eq!(GitAuth::default().token(), Ok(None));
        let _ = std::fs::remove_dir_all(dir);
    }
}
