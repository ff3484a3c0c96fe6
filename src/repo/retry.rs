//! The one backoff helper: every storage operation runs through [`retry`], which bounds each
//! attempt with a timeout and retries only errors that say they are not permanent.

use std::time::Duration;

/// An error that knows whether trying again could help.
pub trait Retryable: std::fmt::Display {
    /// True when retrying cannot succeed (not found, already exists, denied, corrupt, ...).
    fn is_permanent(&self) -> bool;
    /// The error for an attempt that took longer than the policy allows.
    fn timed_out(what: &str, after: Duration) -> Self;
}

/// How long one attempt may take and how often to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Time one attempt may take.
    pub timeout: Duration,
    /// Wait before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// A policy with walvault's backoff (100 ms doubling, at most 5 s).
    pub fn new(retries: u32, timeout: Duration) -> Self {
        RetryPolicy {
            retries,
            timeout,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }

    /// The longest an operation can take under this policy, all attempts and waits included.
    pub fn bound(&self) -> Duration {
        let waits: Duration = (0..self.retries).map(|n| self.backoff(n)).sum();
        self.timeout * (self.retries + 1) + waits
    }

    /// The wait before retry number `attempt + 1` (without jitter).
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.initial_backoff.saturating_mul(1 << attempt.min(16)).min(self.max_backoff)
    }

    /// The wait before retry number `attempt + 1`, with jitter (half to all of [`Self::backoff`]),
    /// so many clients do not retry in lockstep.
    pub fn jittered(&self, attempt: u32) -> Duration {
        self.backoff(attempt).mul_f64(0.5 + rand::random::<f64>() / 2.0)
    }
}

/// Runs `op` until it succeeds, fails permanently, or the policy's attempts are used up.
pub async fn retry<T, E, F, Fut>(policy: &RetryPolicy, what: &str, mut op: F) -> Result<T, E>
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        let result = match tokio::time::timeout(policy.timeout, op()).await {
            Ok(r) => r,
            Err(_) => Err(E::timed_out(what, policy.timeout)),
        };
        match result {
            Ok(v) => return Ok(v),
            Err(e) if e.is_permanent() || attempt >= policy.retries => return Err(e),
            Err(e) => {
                let wait = policy.jittered(attempt);
                tracing::warn!(
                    "{what} failed ({e}); retrying in {} ms (attempt {} of {})",
                    wait.as_millis(),
                    attempt + 2,
                    policy.retries + 1
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug)]
    enum E {
        Transient,
        Permanent,
        Timeout,
    }
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }
    impl Retryable for E {
        fn is_permanent(&self) -> bool {
            matches!(self, E::Permanent)
        }
        fn timed_out(_: &str, _: Duration) -> Self {
            E::Timeout
        }
    }

    fn fast(retries: u32) -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(1),
            ..RetryPolicy::new(retries, Duration::from_millis(50))
        }
    }

    #[tokio::test]
    async fn retries_transient_errors_until_the_budget_is_spent() {
        let calls = AtomicU32::new(0);
        let r: Result<(), E> = retry(&fast(3), "op", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(E::Transient)
        })
        .await;
        assert!(matches!(r, Err(E::Transient)));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn stops_at_a_permanent_error_and_at_success() {
        let calls = AtomicU32::new(0);
        let r: Result<(), E> = retry(&fast(5), "op", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(E::Permanent)
        })
        .await;
        assert!(matches!(r, Err(E::Permanent)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let n = AtomicU32::new(0);
        let r: Result<u32, E> = retry(&fast(5), "op", || async {
            if n.fetch_add(1, Ordering::SeqCst) < 2 { Err(E::Transient) } else { Ok(7) }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_hanging_attempt_times_out() {
        let start = std::time::Instant::now();
        let r: Result<(), E> = retry(&fast(1), "op", std::future::pending::<Result<(), E>>).await;
        assert!(matches!(r, Err(E::Timeout)));
        assert!(start.elapsed() < fast(1).bound() + Duration::from_secs(1));
    }

    #[test]
    fn bound_counts_every_attempt_and_wait() {
        let p = RetryPolicy::new(3, Duration::from_secs(10));
        assert_eq!(p.bound(), Duration::from_millis(40_000 + 100 + 200 + 400));
    }
}
