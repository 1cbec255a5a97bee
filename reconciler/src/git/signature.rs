//! Commit signatures made with ssh keys (`gpg.format=ssh`), checked against
//! an allowed-signers file the way `git verify-commit` does: libgit2 splits
//! the commit into signature and signed payload, and `ssh-keygen -Y`
//! (OpenSSH's own verifier) finds the signer's principal and checks the
//! signature in the `git` namespace at the commit's time.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use git2::{ErrorCode, Oid, Repository};

/// Why a commit is not taken as signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unverified {
    /// The commit itself fails: unsigned, not an ssh signature, a key not
    /// allowed, a bad signature. Refused for good.
    Refused(String),
    /// The check could not run (no ssh-keygen, no temporary space): says
    /// nothing about the commit, so the next pass tries again.
    CannotCheck(String),
}

/// Who signed `commit`, if a key in `allowed` did; why not otherwise.
pub fn verify(repo: &Repository, commit: Oid, allowed: &Path) -> Result<String, Unverified> {
    use Unverified::{CannotCheck, Refused};
    let (signature, payload) = match repo.extract_signature(&commit, None) {
        Ok(x) => x,
        Err(e) if e.code() == ErrorCode::NotFound => return Err(Refused("the commit is not signed".into())),
        Err(e) => return Err(CannotCheck(format!("cannot read the signature: {}", e.message()))),
    };
    let signature = signature.as_str().unwrap_or_default();
    if !signature.starts_with("-----BEGIN SSH SIGNATURE-----") {
        return Err(Refused("signed with GPG or X.509, not an ssh key".into()));
    }
    let when = repo
        .find_commit(commit)
        .map(|c| c.committer().when().seconds())
        .map_err(|e| CannotCheck(e.message().into()))?;
    let file = SignatureFile::write(signature).map_err(CannotCheck)?;
    // Keys are matched as of the commit's time, as git does, so a key
    // retired since (`valid-before`) still vouches for what it signed.
    let time = format!("-Overify-time={}", utc_stamp(when));
    let found = ssh_keygen(&["-Y", "find-principals", "-f"], allowed, &file, &[&time], None)?
        .map_err(|e| Refused(format!("no key in {} made this signature ({e})", allowed.display())))?;
    let mut last = String::new();
    for principal in found.lines().map(str::trim).filter(|p| !p.is_empty()) {
        let extra = ["-I", principal, "-n", "git", &time];
        match ssh_keygen(&["-Y", "verify", "-f"], allowed, &file, &extra, Some(&payload))? {
            Ok(_) => return Ok(principal.to_string()),
            Err(e) => last = e,
        }
    }
    Err(Refused(format!("the signature does not verify: {last}")))
}

/// The signature in a temporary file (ssh-keygen reads it from a path),
/// removed when dropped.
struct SignatureFile(std::path::PathBuf);

impl SignatureFile {
    fn write(text: &str) -> Result<Self, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        // In a container the pid is always 1, and a file left by a killed
        // run may still be there: a name already taken is skipped.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        for _ in 0..100 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("netward-signature-{}-{nanos}-{n}", std::process::id()));
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let file = SignatureFile(path);
                    f.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", file.0.display()))?;
                    return Ok(file);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        Err(format!("no free temporary file name in {}", std::env::temp_dir().display()))
    }
}

impl Drop for SignatureFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// ssh-keygen's answer: Ok(Ok(stdout)) or Ok(Err(its complaint)); Err when
/// it could not be asked.
fn ssh_keygen(
    head: &[&str],
    allowed: &Path,
    sig: &SignatureFile,
    tail: &[&str],
    stdin: Option<&[u8]>,
) -> Result<Result<String, String>, Unverified> {
    let cannot = |e: std::io::Error| Unverified::CannotCheck(format!("ssh-keygen: {e}"));
    let mut child = Command::new("ssh-keygen")
        .args(head)
        .arg(allowed)
        .arg("-s")
        .arg(&sig.0)
        .args(tail)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Unverified::CannotCheck(format!("cannot run ssh-keygen (OpenSSH 8.9 or later checks signatures): {e}"))
        })?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // ssh-keygen may stop reading early; its exit says why.
        let _ = pipe.write_all(data);
    }
    let out = child.wait_with_output().map_err(cannot)?;
    if out.status.success() {
        Ok(Ok(String::from_utf8_lossy(&out.stdout).into_owned()))
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Ok(Err(err.lines().last().unwrap_or("failed").trim().to_string()))
    }
}

/// `YYYYMMDDHHMMSSZ` for a Unix time, as ssh-keygen's `verify-time` takes it.
fn utc_stamp(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}{:02}{:02}{:02}Z", rem / 3_600, rem % 3_600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_become_ssh_keygen_timestamps() {
        assert_eq!(utc_stamp(0), "19700101000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229000000Z", "a leap day");
        assert_eq!(utc_stamp(1_795_628_645), "20261125174405Z");
        assert_eq!(utc_stamp(-1), "19691231235959Z");
    }
}
