//! Webhooks: a job may name a URL and the events it wants (`start`, `progress` at most every
//! 500 ms, `completed`); each event is recorded as a delivery, then sent, signed, in order, and
//! retried with exponential backoff for a bounded time until the receiver answers 2xx.
//!
//! - **Signatures** follow Standard Webhooks (<https://www.standardwebhooks.com/>): headers
//!   `webhook-id` (the delivery id, the same on every retry), `webhook-timestamp` and
//!   `webhook-signature: v1,<base64 HMAC-SHA256>` under the owner's secret
//!   (`GET /v1/webhook-secret`), see [`crate::signing`].
//! - **Order:** a job's event waits until its earlier events are delivered or given up.
//! - **Body:** `{"type": "job.start" | "job.progress" | "job.completed", "timestamp": RFC 3339,
//!   "data": <the job's status, as GET /v1/jobs/{id}>}`.
//! - **Addresses** (server-side request forgery): the host must be on `webhook_hosts` (when
//!   set), and every address it resolves to must be public or inside `webhook_networks`; this is
//!   checked when the job is created and again at each delivery, by the client's own resolver
//!   (so a name that later resolves elsewhere is refused), with redirects not followed and no
//!   proxy.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use utoipa::ToSchema;

use crate::config::Config;
use crate::db::{self, Attempt, DeliveryRow, JobRow, now_ms};
use crate::jobs::status::JobStatus;
use crate::jobs::{JobError, JobResult};
use crate::signing;
use crate::state::{AppState, new_id};

/// The events a job can send to its webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookEvent {
    /// A worker started the job.
    Start,
    /// The job progressed (at most one every 500 ms).
    Progress,
    /// The job ended: succeeded, failed or cancelled.
    Completed,
}

impl WebhookEvent {
    /// The event's name.
    pub fn name(self) -> &'static str {
        match self {
            WebhookEvent::Start => "start",
            WebhookEvent::Progress => "progress",
            WebhookEvent::Completed => "completed",
        }
    }
}

/// The events sent when a request names none: `start` and `completed`.
pub const DEFAULT_EVENTS: [WebhookEvent; 2] = [WebhookEvent::Start, WebhookEvent::Completed];

/// The shortest time between two `progress` events of a job.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Where a job's events go, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookTarget {
    /// The URL.
    pub url: String,
    /// The events wanted (at least one).
    pub events: Vec<WebhookEvent>,
}

impl WebhookTarget {
    /// Sets a job's webhook columns.
    pub fn apply(&self, job: &mut JobRow) {
        job.webhook = Some(self.url.clone());
        let names: Vec<&str> = self.events.iter().map(|e| e.name()).collect();
        job.webhook_events = Some(names.join(","));
    }
}

/// Checks a request's `webhook` and `webhook_events`: an http(s) URL the operator allows (see
/// the module's documentation). Errors: `invalid_webhook` (not a URL, another scheme),
/// `webhook_not_allowed` (a host or an address that is not allowed, or does not resolve).
pub async fn check_target(
    config: &Config,
    url: &str,
    events: Option<&[WebhookEvent]>,
) -> JobResult<WebhookTarget> {
    let events = match events {
        None => DEFAULT_EVENTS.to_vec(),
        Some([]) => {
            return Err(JobError::invalid(
                "invalid_webhook",
                "webhook_events lists no event (use start, progress, completed)",
            ));
        }
        Some(list) => {
            let mut v = list.to_vec();
            v.dedup();
            v
        }
    };
    let parsed = parse_url(url)?;
    let policy = AddressPolicy::from_config(config);
    let host = parsed.host_str().unwrap_or_default().to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    policy.check_host(&host)?;
    let addrs = resolve(&host, port)
        .await
        .map_err(|e| JobError::invalid("webhook_not_allowed", format!("webhook host `{host}`: {e}")))?;
    if let Some(bad) = addrs.iter().find(|a| !policy.ip_allowed(a.ip())) {
        return Err(JobError::invalid(
            "webhook_not_allowed",
            format!(
                "webhook host `{host}` resolves to {}, a non-public address this server does not send to \
                 (an operator allows networks with `webhook_networks`)",
                bad.ip()
            ),
        ));
    }
    Ok(WebhookTarget { url: parsed.to_string(), events })
}

fn parse_url(url: &str) -> JobResult<reqwest::Url> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| JobError::invalid("invalid_webhook", format!("webhook `{url}` is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(JobError::invalid("invalid_webhook", "a webhook is an http or https URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(JobError::invalid("invalid_webhook", "the webhook URL names no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(JobError::invalid(
            "invalid_webhook",
            "the webhook URL carries credentials; deliveries are signed instead",
        ));
    }
    if url.len() > 2048 {
        return Err(JobError::invalid("invalid_webhook", "the webhook URL is over 2048 characters"));
    }
    Ok(parsed)
}

/// The host's addresses (an IP literal is its own address).
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| format!("does not resolve ({e})"))?
        .collect();
    if addrs.is_empty() {
        return Err("resolves to no address".into());
    }
    Ok(addrs)
}

/// Which hosts and addresses webhooks may reach.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    hosts: Vec<String>,
    networks: Vec<IpNet>,
}

impl AddressPolicy {
    /// From `webhook_hosts` and `webhook_networks` (invalid entries were refused by
    /// [`Config::validate`]).
    pub fn from_config(config: &Config) -> Self {
        Self {
            hosts: config.webhook_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            networks: config
                .webhook_networks
                .iter()
                .filter_map(|n| n.parse::<IpNet>().ok().or_else(|| n.parse::<IpAddr>().ok().map(IpNet::from)))
                .collect(),
        }
    }

    /// Whether the host-name allow-list lets `host` through (any host when it is empty).
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.hosts.is_empty()
            || self.hosts.iter().any(|h| match h.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => *h == host,
            })
    }

    fn check_host(&self, host: &str) -> JobResult<()> {
        if self.host_allowed(host) {
            Ok(())
        } else {
            Err(JobError::invalid(
                "webhook_not_allowed",
                format!("webhook host `{host}` is not on this server's webhook_hosts list"),
            ))
        }
    }

    /// Whether an address may be reached: a public one, or one inside `webhook_networks`.
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        is_public(ip) || self.networks.iter().any(|n| n.contains(&ip))
    }
}

/// An IPv4-mapped IPv6 address as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Whether an address is publicly routable. IPv4: not loopback, private (RFC 1918), link-local,
/// shared (100.64.0.0/10), unspecified, broadcast, multicast, documentation, benchmarking, the
/// 6to4 relay anycast (192.88.99.0/24), 192.0.0.0/24 or reserved (240.0.0.0/4). IPv6: only global
/// unicast (2000::/3), less the IETF protocol assignments (2001::/23: Teredo, benchmarking,
/// ORCHID), documentation (2001:db8::/32, 3fff::/20) and 6to4 (2002::/16, which embeds an IPv4
/// address); IPv4-mapped addresses are judged as IPv4. (IANA's special-purpose registries.)
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 192 && o[1] == 88 && o[2] == 99)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            (s[0] & 0xe000) == 0x2000
                && !((s[0] == 0x2001 && s[1] < 0x0200)
                    || (s[0] == 0x2001 && s[1] == 0x0db8)
                    || s[0] == 0x2002
                    || (s[0] & 0xfff0) == 0x3ff0)
        }
    }
}

/// reqwest's resolver that drops the addresses the policy refuses (and fails when none is left),
/// so a delivery cannot reach them whatever the name resolves to at that moment.
struct GuardedResolver(Arc<AddressPolicy>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all = resolve(&host, 0).await?;
            let ok: Vec<SocketAddr> = all.iter().copied().filter(|a| policy.ip_allowed(a.ip())).collect();
            if ok.is_empty() {
                return Err(format!(
                    "`{host}` resolves only to addresses this server does not send to ({})",
                    all.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>().join(", ")
                )
                .into());
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether a job asked for this event.
fn wants(job: &JobRow, event: WebhookEvent) -> bool {
    job.webhook.is_some()
        && job
            .webhook_events
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .any(|e| e == event.name())
}

/// A webhook body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookPayload {
    /// `job.start`, `job.progress` or `job.completed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the event happened (RFC 3339, UTC).
    pub timestamp: String,
    /// The job's status at that moment, as `GET /v1/jobs/{id}` gives it (URLs absolute when
    /// the server's `public_url` is set).
    pub data: JobStatus,
}

fn payload(config: &Config, job: &JobRow, event: WebhookEvent) -> String {
    let mut data = JobStatus::from(job);
    if let Some(base) = config.public_url.as_deref().map(|u| u.trim_end_matches('/')) {
        data.url = format!("{base}{}", data.url);
        data.result_url = data.result_url.map(|u| format!("{base}{u}"));
    }
    let timestamp = chrono::DateTime::from_timestamp_millis(now_ms())
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    serde_json::to_string(&WebhookPayload { kind: format!("job.{}", event.name()), timestamp, data })
        .unwrap_or_default()
}

/// Records an event of `job` for delivery when its webhook asked for it (`key` keeps it from
/// being recorded twice) and wakes the sender. Failures are logged: the job goes on.
pub async fn emit(state: &AppState, job: &JobRow, event: WebhookEvent, key: &str) {
    if !wants(job, event) {
        return;
    }
    let Some(url) = job.webhook.as_deref() else { return };
    let body = payload(&state.config, job, event);
    match db::insert_delivery(&state.db, &new_id("msg"), &job.id, &job.owner, event.name(), key, url, &body).await {
        Ok(true) => state.hub.deliveries.notify_one(),
        Ok(false) => {}
        Err(e) => tracing::warn!(job = %job.id, event = event.name(), error = %e, "recording a webhook event"),
    }
}

/// Records the `completed` event of a job that has ended (read afresh); nothing when it has
/// not, or asked for no such event.
pub async fn emit_completed(state: &AppState, job_id: &str) {
    match db::get_job_by_id(&state.db, job_id).await {
        Ok(Some(job)) if db::state::is_terminal(&job.state) && job.webhook.is_some() => {
            emit(state, &job, WebhookEvent::Completed, "completed").await
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(job = %job_id, error = %e, "reading a job for its webhook"),
    }
}

/// Records a `progress` event (the job read afresh, so it carries the progress just written).
pub async fn emit_progress(state: &AppState, job_id: &str, n: u64) {
    match db::get_job_by_id(&state.db, job_id).await {
        Ok(Some(job)) if wants(&job, WebhookEvent::Progress) && job.state == db::state::RUNNING => {
            emit(state, &job, WebhookEvent::Progress, &format!("progress:{}:{n}", job.attempts)).await
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(job = %job_id, error = %e, "reading a job for its webhook"),
    }
}

/// The HTTP client deliveries go through: the guarded resolver, no redirects, no proxy, the
/// configured timeout.
pub fn client(config: &Config) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(GuardedResolver(Arc::new(AddressPolicy::from_config(config))))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(config.webhook_timeout_secs))
        .connect_timeout(Duration::from_secs(config.webhook_timeout_secs.min(10)))
        .user_agent(concat!("styleforge-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// How many deliveries one process sends at once.
const CONCURRENT_DELIVERIES: usize = 8;

/// Sends due deliveries until shutdown: leases one, sends it (up to
/// [`CONCURRENT_DELIVERIES`] at once), records the attempt, repeats; sleeps when idle.
pub async fn sender_loop(state: AppState, sender: String) {
    let client = match client(&state.config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook client; no webhooks will be sent by this process");
            return;
        }
    };
    let mut shutdown = state.shutdown.subscribe();
    let slots = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
    let lease_ms = (state.config.webhook_timeout_secs as i64 + 30) * 1000;
    let idle = Duration::from_millis(state.config.poll_ms.clamp(50, 1000));
    let mut next_purge = 0i64;
    loop {
        if *shutdown.borrow() {
            break;
        }
        if now_ms() >= next_purge {
            next_purge = now_ms() + 600_000;
            if let Err(e) = db::purge_keys(&state.db).await {
                tracing::warn!(error = %e, "purging expired idempotency keys");
            }
        }
        let Ok(permit) = slots.clone().acquire_owned().await else { break };
        match db::claim_delivery(&state.db, &sender, lease_ms).await {
            Ok(Some(d)) => {
                let (state, client, sender) = (state.clone(), client.clone(), sender.clone());
                tokio::spawn(async move {
                    deliver(&state, &client, &sender, d).await;
                    drop(permit);
                    state.hub.deliveries.notify_one();
                });
                continue;
            }
            Ok(None) => drop(permit),
            Err(e) => {
                drop(permit);
                tracing::warn!(error = %e, "claiming a webhook delivery");
            }
        }
        tokio::select! {
            _ = state.hub.deliveries.notified() => {}
            _ = tokio::time::sleep(idle) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// The delay before retry number `attempts` (1 = the first retry): `webhook_backoff_ms`
/// doubled each time, ±20 % jitter, at most `webhook_backoff_max_secs`.
pub fn backoff_ms(config: &Config, attempts: i64) -> i64 {
    let base = config.webhook_backoff_ms.max(1) as f64 * 2f64.powi((attempts - 1).clamp(0, 30) as i32);
    let jitter = 0.8 + 0.4 * (signing::random_bytes(1)[0] as f64 / 255.0);
    (base * jitter).min(config.webhook_backoff_max_secs as f64 * 1000.0) as i64
}

/// Sends one delivery and records how it went.
async fn deliver(state: &AppState, client: &reqwest::Client, sender: &str, d: DeliveryRow) {
    let started = std::time::Instant::now();
    let at = now_ms();
    let outcome = send(state, client, &d).await;
    let ms = started.elapsed().as_millis() as i64;
    let (status, error, delivered, retry) = match outcome {
        Ok(s) if (200..300).contains(&s) => (Some(s), None, true, true),
        Ok(s) => (Some(s), Some(format!("the receiver answered {s}")), false, true),
        Err((e, retry)) => (None, Some(e), false, retry),
    };
    let retry_at = if delivered || !retry {
        None
    } else {
        let next = now_ms() + backoff_ms(&state.config, d.attempts + 1);
        (next <= d.created_at + state.config.webhook_retry_secs as i64 * 1000).then_some(next)
    };
    let attempt = Attempt { at, status, error: error.clone(), ms };
    match db::record_attempt(&state.db, &d, sender, &attempt, delivered, retry_at).await {
        Ok(_) => {}
        Err(e) => tracing::warn!(delivery = %d.id, error = %e, "recording a webhook attempt"),
    }
    state.metrics.webhook_deliveries.with_label_values(&[match (delivered, retry_at) {
        (true, _) => "delivered",
        (false, Some(_)) => "retrying",
        (false, None) => "failed",
    }]).inc();
    if !delivered {
        tracing::info!(delivery = %d.id, job = %d.job_id, attempt = d.attempts + 1, error = ?error, retry = retry_at.is_some(), "webhook not delivered");
    }
}

/// POSTs a delivery; its status, or why it got none (and whether a retry may help).
async fn send(state: &AppState, client: &reqwest::Client, d: &DeliveryRow) -> Result<u16, (String, bool)> {
    let url = parse_url(&d.url).map_err(|e| (e.message, false))?;
    let host = url.host_str().unwrap_or_default();
    let policy = AddressPolicy::from_config(&state.config);
    policy.check_host(host).map_err(|e| (e.message, false))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>()
        && !policy.ip_allowed(ip)
    {
        return Err((format!("{ip} is not an address this server sends to"), false));
    }
    let secret = db::webhook_secret(&state.db, &d.owner, &signing::new_webhook_secret())
        .await
        .map_err(|e| (format!("reading the signing secret: {e}"), true))?;
    let ts = now_ms() / 1000;
    let mut signature = signing::sign_webhook(&secret, &d.id, ts, d.payload.as_bytes());
    // For a day after a rotation, the previous secret signs too (receivers still holding it
    // verify the second signature of the header).
    if let Ok(Some((previous, rotated_at))) = db::previous_webhook_secret(&state.db, &d.owner).await
        && now_ms() - rotated_at < ROTATION_OVERLAP_MS
        && previous != secret
    {
        signature.push(' ');
        signature.push_str(&signing::sign_webhook(&previous, &d.id, ts, d.payload.as_bytes()));
    }
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &d.id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(d.payload.clone())
        .send()
        .await
        .map_err(|e| (describe(&e), true))?;
    Ok(resp.status().as_u16())
}

/// A transport error with its causes (reqwest's top-level message hides the resolver's).
fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// How long after a rotation deliveries are also signed with the previous secret.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3600 * 1000;

/// An owner's webhook secret (made on first use). Errors: the database's.
pub async fn secret(state: &AppState, owner: &str) -> JobResult<String> {
    Ok(db::webhook_secret(&state.db, owner, &signing::new_webhook_secret()).await?)
}

/// Gives an owner a new webhook secret and returns it.
pub async fn rotate_secret(state: &AppState, owner: &str) -> JobResult<String> {
    let s = signing::new_webhook_secret();
    db::set_webhook_secret(&state.db, owner, &s).await?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_private_addresses() {
        for a in [
            "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
            "224.0.0.1", "255.255.255.255", "192.88.99.1", "198.18.0.1", "240.0.0.1",
            "::1", "::", "fd00::1", "fe80::1", "::ffff:127.0.0.1", "::ffff:0:a00:1", "::127.0.0.1",
            "64:ff9b::7f00:1", "2002:7f00:1::", "2002:a9fe:a9fe::", "2001:0:a00:1::", "2001:20::1",
            "2001:db8::1", "3fff::1", "100::1", "5f00::1", "ff02::1",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a} is not public");
        }
        for a in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "2001:4860:4860::8888", "2a00:1450::1"] {
            assert!(is_public(a.parse().unwrap()), "{a} is public");
        }
    }

    #[test]
    fn networks_and_hosts_widen_and_narrow_the_policy() {
        let mut c = Config::default();
        c.webhook_networks = vec!["127.0.0.0/8".into(), "10.0.0.5".into()];
        c.webhook_hosts = vec!["hooks.example.com".into(), "*.example.org".into()];
        let p = AddressPolicy::from_config(&c);
        assert!(p.ip_allowed("127.0.0.1".parse().unwrap()));
        assert!(p.ip_allowed("::ffff:127.0.0.1".parse().unwrap()));
        assert!(p.ip_allowed("10.0.0.5".parse().unwrap()));
        assert!(!p.ip_allowed("10.0.0.6".parse().unwrap()));
        assert!(p.host_allowed("hooks.example.com"));
        assert!(p.host_allowed("a.b.example.org"));
        assert!(!p.host_allowed("example.org"));
        assert!(!p.host_allowed("evil.com"));
        assert!(AddressPolicy::from_config(&Config::default()).host_allowed("anything.test"));
    }

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let mut c = Config::default();
        c.webhook_backoff_ms = 1000;
        c.webhook_backoff_max_secs = 5;
        for (attempt, base) in [(1, 1000.0), (2, 2000.0), (3, 4000.0)] {
            let d = backoff_ms(&c, attempt) as f64;
            assert!(d >= base * 0.8 - 1.0 && d <= base * 1.2 + 1.0, "attempt {attempt}: {d}");
        }
        assert!(backoff_ms(&c, 10) <= 5000);
    }
}
