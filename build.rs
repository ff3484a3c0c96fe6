//! Stamps the git revision into `--version` (`WALVAULT_GIT_REV`): from the environment when
//! set (a container build has no `.git`: the Dockerfile passes it in), else from `git
//! rev-parse`, else `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=WALVAULT_GIT_REV");
    let rev = match std::env::var("WALVAULT_GIT_REV") {
        Ok(r) if !r.trim().is_empty() => r.trim().to_string(),
        _ => {
            // Rebuild when HEAD moves: HEAD itself, the branch it names, and packed refs.
            // Only files that exist: cargo reruns the script (and rebuilds the crate) on every
            // build for a path that does not. `--git-path` resolves each in a linked worktree
            // too, where HEAD is the worktree's and the refs are the common directory's.
            let mut watch = vec!["HEAD".to_string(), "packed-refs".to_string()];
            if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
                watch.push(r);
            }
            for name in watch {
                if let Some(path) = git(&["rev-parse", "--git-path", &name])
                    && std::path::Path::new(&path).exists()
                {
                    println!("cargo:rerun-if-changed={path}");
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
        }
    };
    println!("cargo:rustc-env=WALVAULT_GIT_REV={rev}");
}
