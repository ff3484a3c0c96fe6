//! The SIGINT/SIGTERM future every long command (base-backup, restore) selects on, so an
//! interrupted command stops its work and removes what it wrote instead of dying half-way.

/// Resolves on SIGINT or SIGTERM (never, if the handlers cannot be installed).
pub async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
