//! Reading a policy repository at a Git revision (or the working tree)
//! through the `git` command: the I/O edge of `netward diff`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn git(repo: &Path, args: &[&str]) -> Result<String, String> {
    let out =
        Command::new("git").arg("-C").arg(repo).args(args).output().map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The revision's full commit id.
pub fn resolve(repo: &Path, rev: &str) -> Result<String, String> {
    git(repo, &["rev-parse", "--verify", &format!("{rev}^{{commit}}")]).map(|s| s.trim().to_string())
}

/// The merge base of HEAD with the default branch (origin's HEAD, else main
/// or master). On the default branch itself that is HEAD, so the working
/// tree is compared with the last commit.
pub fn default_base(repo: &Path) -> Result<String, String> {
    let candidates = ["origin/HEAD", "origin/main", "origin/master", "main", "master"];
    for c in candidates {
        if let Ok(b) = git(repo, &["merge-base", "HEAD", c]) {
            return Ok(b.trim().to_string());
        }
    }
    Err("no default branch found; pass --base".into())
}

/// Every `*.yaml`, `*.yml` and `*.json` file under `path` at `rev` (None:
/// the working tree), as (display name, text). Display names are
/// `REV:path` for revisions and plain paths for the working tree.
pub fn files(repo: &Path, rev: Option<&str>, path: &str) -> Result<Vec<(Arc<str>, String)>, String> {
    let wanted = |f: &str| {
        let hidden = f.split('/').any(|part| part.starts_with('.') && part != "." && part != "..");
        !hidden && (f.ends_with(".yaml") || f.ends_with(".yml") || f.ends_with(".json"))
    };
    let mut out: Vec<(Arc<str>, String)> = Vec::new();
    match rev {
        Some(r) => {
            let short = &r[..r.len().min(8)];
            let list = git(repo, &["ls-tree", "-r", "--name-only", r, "--", path])?;
            for f in list.lines().filter(|f| wanted(f)) {
                let text = git(repo, &["show", &format!("{r}:{f}")])?;
                out.push((Arc::from(format!("{short}:{f}")), text));
            }
        }
        None => {
            let list = git(repo, &["ls-files", "--cached", "--others", "--exclude-standard", "--", path])?;
            for f in list.lines().filter(|f| wanted(f)) {
                if let Ok(text) = std::fs::read_to_string(repo.join(f)) {
                    out.push((Arc::from(f.to_string()), text));
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
