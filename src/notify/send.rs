//! The POST of an alert: one attempt, bounded by `[notify] timeout`, whose outcome is only
//! logged (without the URL's path or any header value).

use secrecy::ExposeSecret;

use super::{Event, Origin, payload};
use crate::config::NotifySettings;
use crate::config::notify::redact_url;
use crate::units::UtcTime;

/// Posts `event` to the configured webhook, if there is one. Never fails: a failure is logged
/// (as a warning) and returned as `false`.
pub async fn send(settings: &NotifySettings, origin: &Origin, event: &Event) -> bool {
    let Some(url) = &settings.webhook else { return true };
    let shown = redact_url(url.expose_secret());
    let body = payload(settings.format, event, origin, UtcTime::now());
    let result = async {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .build()
            .map_err(|e| e.without_url().to_string())?;
        let mut req = client
            .post(url.expose_secret())
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).expect("payloads serialise"));
        for (k, v) in &settings.headers {
            req = req.header(k, v.expose_secret());
        }
        let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
        if resp.status().is_success() { Ok(()) } else { Err(format!("HTTP {}", resp.status().as_u16())) }
    };
    match tokio::time::timeout(settings.timeout, result).await {
        Ok(Ok(())) => {
            tracing::debug!("sent the alert \"{}\" to {shown}", event.summary());
            true
        }
        Ok(Err(e)) => {
            tracing::warn!("could not send the alert \"{}\" to {shown}: {e}", event.summary());
            false
        }
        Err(_) => {
            tracing::warn!(
                "could not send the alert \"{}\" to {shown}: no answer within {:?}",
                event.summary(),
                settings.timeout
            );
            false
        }
    }
}
