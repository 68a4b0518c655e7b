//! Command line and environment settings, validated once at start.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

use crate::ingest::ts302::Variant;
use crate::web::proxies::TrustedProxies;
pub use crate::web::state::StreamTransport;

/// Longest `--signature-window-secs`: half of how long nonces are remembered.
pub const MAX_SIGNATURE_WINDOW_SECS: u64 = NONCE_KEEP_SECS / 2;
/// How long a claimed nonce is remembered before housekeeping drops it.
pub const NONCE_KEEP_SECS: u64 = 3600;

#[derive(Debug, Parser)]
#[command(
    name = "sensorcast",
    version,
    about = "Milesight IoT webhooks in, live browser dashboards out."
)]
pub struct Cli {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default when no command is given).
    Serve,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Manage a device's alarm rules.
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Manage notifications.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Manage sites.
    #[command(subcommand)]
    Site(SiteCommand),
}

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Set the site's time zone (IANA name, e.g. Europe/Berlin; `default`: the server's).
    Timezone {
        #[arg(long)]
        site: String,
        #[arg(long)]
        tz: String,
    },
    /// Print every site with its time zone.
    List,
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Outgoing webhooks per site.
    #[command(subcommand)]
    Webhook(WebhookCommand),
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Post this site's alarms to a URL, signed with the secret (at least 16 bytes).
    Add {
        #[arg(long)]
        site: String,
        #[arg(long)]
        url: String,
        #[arg(long, env = "SENSORCAST_WEBHOOK_SECRET_NEW", hide_env_values = true)]
        secret: String,
    },
    /// Print every site's webhooks.
    List,
    /// Remove a webhook by its id (from `list`).
    Remove {
        #[arg(long)]
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Set (add or replace) the rule of one quantity and probe.
    Set {
        /// Milesight device id or devEUI.
        #[arg(long)]
        device: String,
        #[arg(long, value_parser = ["temperature", "humidity"])]
        quantity: String,
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=2))]
        probe: i64,
        /// Lowest value inside the range (°C or %RH).
        #[arg(long, allow_hyphen_values = true)]
        min: Option<f64>,
        /// Highest value inside the range (°C or %RH).
        #[arg(long, allow_hyphen_values = true)]
        max: Option<f64>,
        /// How long a value must stay outside before an alarm: 600, 600s, 10m, 1h.
        #[arg(long, default_value = "0", value_parser = parse_delay)]
        delay: i64,
    },
    /// Print a device's rules.
    List {
        #[arg(long)]
        device: String,
    },
    /// Remove every rule of a device.
    Clear {
        #[arg(long)]
        device: String,
    },
}

/// An SMTP URL lettre can use: checked at start so a typo stops the server with the flag's name.
pub fn parse_smtp_url(s: &str) -> Result<String, String> {
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(s.trim())
        .map(|_| s.trim().to_string())
        .map_err(|e| format!("not an SMTP URL (smtp://host:port or smtps://host:465): {e}"))
}

/// An IANA time zone name the bundled database knows.
pub fn parse_time_zone_arg(s: &str) -> Result<String, String> {
    crate::domain::parse_time_zone(s).map(|_| s.trim().to_string())
}

/// Seconds from `600`, `600s`, `10m` or `1h`.
pub fn parse_delay(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (number, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a delay like 600, 600s, 10m or 1h"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("unknown unit {unit:?}: use s, m or h")),
    };
    n.checked_mul(scale).ok_or_else(|| "delay too long".into())
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ["admin", "manager", "employee"])]
        role: String,
        /// Site the user belongs to (repeatable); created on first use.
        #[arg(long = "site")]
        sites: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Put a device into a site (the site is created on first use).
    Assign {
        /// Milesight device id or devEUI.
        #[arg(long)]
        device: String,
        #[arg(long)]
        site: String,
    },
    /// Set the TS302 protocol variant a gateway device speaks (v1, v2, or default).
    Variant {
        /// Milesight device id or devEUI.
        #[arg(long)]
        device: String,
        #[arg(long, value_parser = ["v1", "v2", "default"])]
        variant: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Database: sqlite://FILE (created on start) or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://sensorcast.db",
        global = true
    )]
    pub database_url: String,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SENSORCAST_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// MDP webhook secret key(s). Comma-separated; an entry `UUID=SECRET` applies only to the
    /// webhook with that x-msc-webhook-uuid. Unset: signed MDP webhooks are refused with 401.
    #[arg(long, env = "MILESIGHT_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// Shared token for gateway uplinks (header X-Sensorcast-Token or ?token=). Unset: refused.
    #[arg(long, env = "MILESIGHT_GATEWAY_TOKEN", hide_env_values = true)]
    pub gateway_token: Option<String>,

    /// Seconds between SSE keepalive messages.
    #[arg(long, env = "SENSORCAST_KEEPALIVE_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub keepalive_secs: u64,

    /// Longest replay a reconnecting stream gets: past this many events after its Last-Event-ID
    /// it is sent `resync` (the page reloads its data) and goes on live.
    #[arg(long, env = "SENSORCAST_MAX_REPLAY_EVENTS", default_value_t = 50_000, value_parser = clap::value_parser!(i64).range(1..))]
    pub max_replay_events: i64,

    /// Open streams allowed per user (0 = no cap).
    #[arg(long, env = "SENSORCAST_MAX_STREAMS_PER_USER", default_value_t = 8)]
    pub max_streams_per_user: usize,

    /// Open streams allowed in total (0 = no cap).
    #[arg(long, env = "SENSORCAST_MAX_STREAMS", default_value_t = 20_000)]
    pub max_streams: usize,

    /// Threads that accept connections and serve event streams, apart from those answering
    /// webhooks and pages, so a large fan-out never delays ingest (0 = share one runtime;
    /// default: one per core). As many shard threads (at least one) write live events to the
    /// streams that are caught up.
    #[arg(long, env = "SENSORCAST_STREAM_THREADS", default_value_t = default_stream_threads())]
    pub stream_threads: usize,

    /// How a connection whose first request is a stream is served, on the stream threads:
    /// `raw` (our own writer; an idle stream holds no hyper buffers) or `hyper` (for A/B runs,
    /// and as a fallback).
    #[arg(long, env = "SENSORCAST_STREAM_TRANSPORT", value_enum, default_value_t = StreamTransport::Raw)]
    pub stream_transport: StreamTransport,

    /// Open connections allowed (0 = no cap); one more is answered 503 at once and closed.
    /// Default: the open-file limit less 256 (kept for the database, files and the listener).
    #[arg(long, env = "SENSORCAST_MAX_CONNECTIONS", default_value_t = default_max_connections())]
    pub max_connections: usize,

    /// Longest a client may take to send a request head, in seconds; also how long an idle
    /// keep-alive connection stays open (a proxy's upstream keep-alive must be shorter).
    #[arg(long, env = "SENSORCAST_HEAD_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub head_timeout_secs: u64,

    /// Longest a client may take to send a request body once the head is in, in seconds
    /// (then 408 and the connection is closed).
    #[arg(long, env = "SENSORCAST_BODY_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout_secs: u64,

    /// Longest any request but a stream may take from its head to its answer, in seconds
    /// (then 408 if its body is still arriving, else 503).
    #[arg(long, env = "SENSORCAST_REQUEST_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_secs: u64,

    /// A client that reads nothing of what it is sent for this many seconds is disconnected; a
    /// stream resumes from its Last-Event-ID when the client reconnects.
    #[arg(long, env = "SENSORCAST_STALL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub stall_secs: u64,

    /// Admin created on start when no user exists yet (with --admin-password).
    #[arg(long, env = "SENSORCAST_ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    /// Password of that admin.
    #[arg(long, env = "SENSORCAST_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Allowed age (and clock skew) of a signed MDP request, in seconds. At most 1800: a nonce
    /// is remembered for an hour, which must cover a request's whole life (twice the window).
    #[arg(long, env = "SENSORCAST_SIGNATURE_WINDOW_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=MAX_SIGNATURE_WINDOW_SECS))]
    pub signature_window_secs: u64,

    /// Largest accepted webhook body, in bytes (larger: 413).
    #[arg(long, env = "SENSORCAST_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Longest a webhook request may take, in seconds (a slow sender is cut off with 408).
    #[arg(long, env = "SENSORCAST_WEBHOOK_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub webhook_timeout_secs: u64,

    /// TS302 protocol variant for gateway devices without their own setting (v1 or v2).
    #[arg(long, env = "SENSORCAST_TS302_VARIANT", default_value = "v1")]
    pub ts302_variant: Variant,

    /// Reporting interval assumed for a device without its own, in seconds. A device silent for
    /// 3 x interval + 5 minutes is marked OFFLINE.
    #[arg(long, env = "SENSORCAST_REPORT_INTERVAL_SECS", default_value_t = 600)]
    pub report_interval_secs: i64,

    /// Delete raw readings measured more than this many days ago, in small batches, keeping
    /// their quarter-hour summaries (reports and long charts read those). 0: keep everything.
    #[arg(long, env = "SENSORCAST_RETENTION_DAYS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub retention_days: u32,

    /// Time zone of a site that has none of its own (IANA name): where report days start.
    #[arg(long, env = "SENSORCAST_TIME_ZONE", default_value = "UTC", value_parser = parse_time_zone_arg)]
    pub time_zone: String,

    /// Added to 3 x the interval before a silent device is marked OFFLINE, in seconds.
    #[arg(long, env = "SENSORCAST_OFFLINE_GRACE_SECS", default_value_t = 300)]
    pub offline_grace_secs: i64,

    /// How often silent devices are looked for, in seconds.
    #[arg(long, env = "SENSORCAST_OFFLINE_SWEEP_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub offline_sweep_secs: u64,

    /// Send session cookies with the Secure attribute (turn off only for plain-HTTP use off localhost).
    #[arg(long, env = "SENSORCAST_COOKIE_SECURE", default_value_t = true, action = clap::ArgAction::Set)]
    pub cookie_secure: bool,

    /// Capacity of the in-process broadcast channel (events); a slower stream catches up from the database.
    #[arg(long, env = "SENSORCAST_BROADCAST_CAPACITY", default_value_t = 4096)]
    pub broadcast_capacity: usize,

    /// Reverse proxies whose X-Forwarded-For / X-Real-IP name the client (comma-separated
    /// addresses or networks, e.g. 127.0.0.1,::1 behind a local nginx). Default: none, so a
    /// client cannot pick the address it is rate limited by; behind a proxy without this, every
    /// client counts as the proxy's address.
    #[arg(long, env = "SENSORCAST_TRUSTED_PROXIES", default_value = "", value_parser = clap::value_parser!(TrustedProxies))]
    pub trusted_proxies: TrustedProxies,

    /// Bearer token that /metrics requires (Authorization: Bearer TOKEN). Unset: /metrics is
    /// served only to a scraper on this machine connecting directly (a loopback peer, no
    /// forwarding header), so a reverse proxy never publishes it; anyone else gets 403.
    #[arg(long, env = "SENSORCAST_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// The Milesight gateway's own HTTP API, for device commands (downlinks): its web
    /// server's address, http(s)://HOST[:PORT] (e.g. http://192.168.23.150:8080). Unset: commands
    /// are refused with 409 downlink_not_configured.
    #[arg(long, env = "SENSORCAST_GATEWAY_API_URL")]
    pub gateway_api_url: Option<String>,

    /// User the gateway API is signed in as (the gateway's web UI user, e.g. admin).
    #[arg(long, env = "SENSORCAST_GATEWAY_API_USER")]
    pub gateway_api_user: Option<String>,

    /// That user's password (sent AES-encrypted, as the gateway's login expects).
    #[arg(long, env = "SENSORCAST_GATEWAY_API_PASSWORD", hide_env_values = true)]
    pub gateway_api_password: Option<String>,

    /// Seconds before a downlink the gateway could not take (5xx, unreachable) is tried again;
    /// doubled on each further try, at most 5 minutes.
    #[arg(long, env = "SENSORCAST_GATEWAY_API_RETRY_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub gateway_api_retry_secs: u64,

    /// A command not confirmed by the device this many minutes after it was asked for is
    /// marked expired.
    #[arg(long, env = "SENSORCAST_COMMAND_TIMEOUT_MINS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=10_080))]
    pub command_timeout_mins: u64,

    /// Log format: text or json.
    #[arg(long, env = "SENSORCAST_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// SMTP server for alarm emails: smtp://host:port (STARTTLS when offered),
    /// smtp://user:pass@host:587?tls=required, smtps://host:465 (implicit TLS). Unset: no emails
    /// (each is recorded as not sent).
    #[arg(long, env = "SENSORCAST_SMTP_URL", hide_env_values = true, value_parser = parse_smtp_url)]
    pub smtp_url: Option<String>,

    /// The From address of alarm emails.
    #[arg(
        long,
        env = "SENSORCAST_SMTP_FROM",
        default_value = "sensorcast <sensorcast@localhost>"
    )]
    pub smtp_from: String,

    /// The address people reach this server at, for links in notifications
    /// (https://sensorcast.example.com). Default: http://<--listen>.
    #[arg(long, env = "SENSORCAST_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Minutes after which an unacknowledged alarm is notified again, to the site's managers and
    /// every admin (once).
    #[arg(long, env = "SENSORCAST_ESCALATE_AFTER_MINS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=10080))]
    pub escalate_after_mins: u64,

    /// The same in seconds, overriding the minutes (for tests and demos).
    #[arg(long, env = "SENSORCAST_ESCALATE_AFTER_SECS", hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub escalate_after_secs: Option<u64>,

    /// Seconds before the first retry of a failed notification; doubled each time (at most an
    /// hour apart), given up 24 h after the alarm.
    #[arg(long, env = "SENSORCAST_NOTIFY_RETRY_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub notify_retry_secs: u64,

    /// Longest one delivery attempt (an SMTP exchange, a webhook or push POST) may take; one
    /// that runs out is retried like any failure.
    #[arg(long, env = "SENSORCAST_NOTIFY_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub notify_timeout_secs: u64,

    /// The flood guard: alarm emails (and pushes) one person gets in an hour, per channel; the
    /// rest are held and sent as one summary when the hour has room. 0: no limit. Webhooks are
    /// never held.
    #[arg(long, env = "SENSORCAST_NOTIFY_MAX_PER_HOUR", default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=10000))]
    pub notify_max_per_hour: u64,

    /// The flood guard's window in seconds instead of an hour (for tests and demos).
    #[arg(long, env = "SENSORCAST_NOTIFY_FLOOD_WINDOW_SECS", hide = true, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub notify_flood_window_secs: u64,

    /// Accept Web Push subscriptions whose endpoint is plain http:// (tests that play the push
    /// service only; browsers' push services are https).
    #[arg(long, env = "SENSORCAST_PUSH_INSECURE_ENDPOINTS", hide = true)]
    pub push_insecure_endpoints: bool,

    /// Also run a simulated TS302 fleet and create demo users and sites.
    #[arg(long, env = "SENSORCAST_DEMO")]
    pub demo: bool,
}

fn default_stream_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The soft open-file limit less a reserve; 10,000 where the limit cannot be read.
fn default_max_connections() -> usize {
    const RESERVE: usize = 256;
    open_files_limit().map_or(10_000, |n| n.saturating_sub(RESERVE).max(64))
}

/// The soft `RLIMIT_NOFILE`, from /proc (no unsafe code for a default).
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    soft.parse().ok()
}

impl ServeArgs {
    /// Settings for tests: everything at its default except what a test sets.
    pub fn for_tests() -> Self {
        let cli = Cli::parse_from(["sensorcast"]);
        ServeArgs {
            cookie_secure: false,
            stream_threads: 1,
            ..cli.serve
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn delays_take_units() {
        assert_eq!(super::parse_delay("600"), Ok(600));
        assert_eq!(super::parse_delay("10m"), Ok(600));
        assert_eq!(super::parse_delay("1h"), Ok(3600));
        assert!(super::parse_delay("10x").is_err());
        assert!(super::parse_delay("m").is_err());
    }

    #[test]
    fn retention_days_are_checked_and_named() {
        use clap::Parser;
        let parse = |v: &str| {
            super::Cli::try_parse_from(["sensorcast".to_string(), format!("--retention-days={v}")])
        };
        assert_eq!(parse("30").unwrap().serve.retention_days, 30);
        for bad in ["-1", "x", "40000"] {
            let Err(err) = parse(bad) else {
                panic!("{bad} was accepted")
            };
            let err = err.to_string();
            assert!(err.contains("--retention-days"), "{err}");
        }
        assert_eq!(
            super::ServeArgs::for_tests().retention_days,
            0,
            "kept by default"
        );
    }
}
