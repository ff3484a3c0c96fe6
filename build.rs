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
            // build for a path that does not.
            if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
                let mut watch = vec![format!("{dir}/HEAD"), format!("{dir}/packed-refs")];
                if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
                    watch.push(format!("{dir}/{r}"));
                }
                for path in watch.iter().filter(|p| std::path::Path::new(p).exists()) {
                    println!("cargo:rerun-if-changed={path}");
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
        }
    };
    println!("cargo:rustc-env=WALVAULT_GIT_REV={rev}");
}
