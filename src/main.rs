//! The sensorcast binary: parse the command line, then serve or run a management command.

use std::io::Read;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sensorcast::config::{
    Cli, Command, DeviceCommand, NotifyCommand, SiteCommand, UserCommand, WebhookCommand,
};
use sensorcast::demo;
use sensorcast::domain::Role;
use sensorcast::store::Store;
use sensorcast::web::accounts;

// A connection's memory is often freed on another thread than the one that allocated it (work
// stealing, the hub); glibc's per-thread arenas made malloc and free a tenth of a reconnect
// storm's CPU (bench/README.md, 2026-12-06). Built without transparent huge pages (Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long shutdown waits for open connections.
const GRACE: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(&cli.serve.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&cli.db.database_url, &cli.serve).await,
        Command::User(UserCommand::Add { email, role, sites }) => {
            let store = Store::open(&cli.db.database_url).await?;
            let role = Role::parse(&role).context("role must be admin, manager or employee")?;
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            let id =
                accounts::create(&store, &email, password, role, &sites, "command line").await?;
            println!("created user {id} ({email}, {})", role.as_str());
            Ok(())
        }
        Command::Device(DeviceCommand::Assign { device, site }) => {
            let store = Store::open(&cli.db.database_url).await?;
            store
                .assign_device_to_site(&device, &site, "command line")
                .await?;
            println!("device {device} is now in site {site}");
            Ok(())
        }
        Command::Notify(NotifyCommand::Webhook(command)) => {
            let store = Store::open(&cli.db.database_url).await?;
            match command {
                WebhookCommand::Add { site, url, secret } => {
                    let id = store
                        .add_webhook_endpoint(&site, &url, &secret, "command line")
                        .await?;
                    println!("webhook {id}: {site} alarms are posted to {url}");
                }
                WebhookCommand::List => {
                    for e in store.webhook_endpoints().await? {
                        println!("{}\t{}\t{}", e.id, e.site_name, e.url);
                    }
                }
                WebhookCommand::Remove { id } => {
                    let removed = store.remove_webhook_endpoint(id, "command line").await?;
                    anyhow::ensure!(removed, "no webhook {id}");
                    println!("webhook {id} removed");
                }
            }
            Ok(())
        }
        Command::Site(command) => {
            let store = Store::open(&cli.db.database_url).await?;
            match command {
                SiteCommand::Timezone { site, tz } => {
                    let setting = if tz.trim() == "default" {
                        None
                    } else {
                        sensorcast::domain::parse_time_zone(&tz).map_err(anyhow::Error::msg)?;
                        Some(tz.trim().to_string())
                    };
                    let found = store
                        .set_site_time_zone(&site, setting.as_deref(), "command line")
                        .await?;
                    anyhow::ensure!(found, "no site {site:?}");
                    match &setting {
                        Some(tz) => println!("site {site} now reports in {tz}"),
                        None => println!("site {site} now reports in the server's time zone"),
                    }
                }
                SiteCommand::List => {
                    for s in store.sites().await? {
                        let tz = s.time_zone.as_deref().unwrap_or("default");
                        println!("{}\t{}\t{tz}", s.id, s.name);
                    }
                }
            }
            Ok(())
        }
        Command::Rule(command) => {
            let store = Store::open(&cli.db.database_url).await?;
            sensorcast::cli::rules(&store, command, &cli.serve).await
        }
        Command::Device(DeviceCommand::Variant { device, variant }) => {
            let store = Store::open(&cli.db.database_url).await?;
            let setting = (variant != "default").then_some(variant.as_str());
            store.set_device_variant(&device, setting).await?;
            println!("device {device} now decodes as {variant}");
            Ok(())
        }
    }
}

async fn serve(database_url: &str, args: &sensorcast::config::ServeArgs) -> anyhow::Result<()> {
    let mut args = args.clone();
    let demo_secret = args
        .demo
        .then(|| demo::add_demo_secret(&mut args.webhook_secret));
    let state = sensorcast::build_state(database_url, &args).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(address = %addr, "sensorcast listening on http://{addr}");
    if let Some(secret) = demo_secret {
        demo::seed(&state.store).await;
        demo::spawn_fleet(
            state.store.clone(),
            state.writer.clone(),
            addr,
            secret,
            Duration::from_secs(5),
            state.shutdown.clone(),
        );
        for (email, password, role, _) in demo::USERS {
            tracing::info!("demo login: {email} / {password} ({})", role.as_str());
        }
    }
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: ending streams, finishing requests");
        shutdown.cancel();
    });
    sensorcast::serve(state, listener, GRACE).await?;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

fn init_tracing(format: &str) {
    sensorcast::logging::init(format);
}
