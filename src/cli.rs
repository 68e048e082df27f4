//! The `firehook` command line.

use std::path::{Path, PathBuf};

use anyhow::Context;

use clap::{Parser, Subcommand};

use crate::clock::Clock;
use crate::config::Settings;
use crate::send_test::{self, SendTest};
use crate::startup::{self, Application};
use crate::store::{key_file, KeySource, Store};
use crate::{auth, retention, telemetry};

#[derive(Parser)]
#[command(name = "firehook", version, about = "A gateway for inbound webhooks")]
struct Cli {
    /// A configuration file layered over config/default.toml (FIREHOOK__* variables win).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations, then serve (the default).
    Serve,
    /// Apply migrations and exit.
    Migrate,
    /// Delete logged deliveries past `retention.deliveries_days` and expired idempotency
    /// keys (what `serve` does in the background), then exit.
    Prune,
    /// Sign a fresh sample of a provider's event with a connection's own secret, post it
    /// to the connection's receive URL and print the outcome and the delivery id.
    SendTest {
        /// The provider (`clerk`, `stripe`, `shopify`, ...).
        provider: String,
        /// The connection (`con_...`).
        #[arg(long)]
        connection: String,
        /// The event to send (default: the provider's first sample that fires).
        #[arg(long)]
        event: Option<String>,
        /// The contact's email (default: a fresh send-test+...@example.com).
        #[arg(long)]
        email: Option<String>,
        /// The gateway's base URL (default: server.public_url, else server.bind).
        #[arg(long)]
        url: Option<String>,
    },
    /// Re-encrypt every stored signing secret with a new key, in one transaction. Stop
    /// every gateway first. With the default key file (SQLite, no
    /// security.encryption_key) the key file is replaced; otherwise set
    /// security.encryption_key to the new key before starting again.
    RotateEncryptionKey {
        /// The new key: a file holding the base64 of 32 bytes (mode 0600), created with a
        /// fresh random key if it does not exist.
        #[arg(long, value_name = "PATH")]
        new_key_file: PathBuf,
    },
    /// Manage orgs.
    Orgs {
        #[command(subcommand)]
        command: OrgsCommand,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum OrgsCommand {
    /// Create an org and print its first API key.
    Create { name: String },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key and print it once.
    Create {
        /// The org the key acts for (default: the first org).
        #[arg(long)]
        org: Option<String>,
        /// A label for the key.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// Revoke an API key by its id (`key_...`).
    Revoke { id: String },
}

pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    telemetry::init(settings.log.format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli.command.unwrap_or(Command::Serve), settings))
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    let clock = Clock::system();
    if let Command::Serve = command {
        let bind = settings.server.bind.clone();
        let app = Application::build(settings, clock).await?;
        tracing::info!(%bind, port = app.port(), "firehook is listening");
        if let Some(addr) = app.metrics_addr() {
            tracing::info!(%addr, "metrics are served apart");
        }
        // One plain line on stdout, so scripts (and the tests) learn the port bound for :0.
        println!("listening on {}", app.local_addr());
        app.run_until_stopped().await?;
        return Ok(());
    }
    if let Command::SendTest {
        provider,
        connection,
        event,
        email,
        url,
    } = command
    {
        let test = SendTest {
            provider,
            connection_id: connection,
            event,
            email,
            url,
        };
        return send_test::run(&settings, test).await;
    }
    if let Command::RotateEncryptionKey { new_key_file } = command {
        return rotate_encryption_key(&settings, &new_key_file).await;
    }
    let store = startup::open_store(&settings).await?;
    let now = clock.now_ms();
    match command {
        Command::Serve
        | Command::Migrate
        | Command::SendTest { .. }
        | Command::RotateEncryptionKey { .. } => {
            println!("migrations applied")
        }
        Command::Prune => {
            let pruned = retention::prune(&store, &settings, &clock).await?;
            println!(
                "pruned {} deliveries, {} idempotency keys, {} outbound deliveries and {} \
                 outbound events",
                pruned.deliveries,
                pruned.fire_keys,
                pruned.outbound_deliveries,
                pruned.outbound_events
            );
        }
        Command::Orgs {
            command: OrgsCommand::Create { name },
        } => {
            let (org_id, key) = auth::create_org(&store, &name, None, now).await?;
            println!(
                "org {org_id}\napi key {} (id {}); it is shown only now",
                key.secret, key.id
            );
        }
        Command::Keys {
            command: KeysCommand::Create { org, name },
        } => {
            let org_id = match org {
                Some(org) if store.org_exists(&org).await? => org,
                Some(org) => anyhow::bail!("no org {org}"),
                None => store.first_org().await?.ok_or_else(|| {
                    anyhow::anyhow!(
                        "no org yet: run `firehook serve` or `firehook orgs create NAME` first"
                    )
                })?,
            };
            let key = auth::create_key(&store, &org_id, &name, now).await?;
            println!(
                "api key {} (id {}) for org {org_id}; it is shown only now",
                key.secret, key.id
            );
        }
        Command::Keys {
            command: KeysCommand::Revoke { id },
        } => {
            if !store.revoke_api_key(&id, now).await? {
                anyhow::bail!("no active key {id}");
            }
            println!("revoked {id}");
        }
    }
    store.close().await;
    Ok(())
}

/// Re-encrypts the secrets with the key in `new_key_file`, then puts that key where the
/// gateway reads it (the default key file) or says where it must go.
async fn rotate_encryption_key(settings: &Settings, new_key_file: &Path) -> anyhow::Result<()> {
    let (current, source) = key_file::resolve(settings)?;
    let new = key_file::read_or_create(new_key_file)?;
    if new.id() == current.id() {
        anyhow::bail!("{} holds the key already in use", new_key_file.display());
    }
    let store = Store::connect(&settings.database, current).await?;
    store.migrate().await?;
    let count = store
        .reseal_secrets(&new)
        .await
        .context("the current key does not decrypt the stored secrets; nothing was changed")?;
    store.close().await;
    println!("re-encrypted {count} secrets with key {}", new.id());
    match source {
        KeySource::File(path) => {
            let text = std::fs::read_to_string(new_key_file)?;
            key_file::replace(&path, text.trim()).with_context(|| {
                format!(
                    "the secrets are encrypted with the key in {}, but replacing {} failed: \
                     copy it there (mode 0600) before starting firehook",
                    new_key_file.display(),
                    path.display()
                )
            })?;
            println!("{} now holds the new key", path.display());
        }
        KeySource::Configured => println!(
            "set security.encryption_key (FIREHOOK__SECURITY__ENCRYPTION_KEY) to the contents \
             of {} before starting firehook again",
            new_key_file.display()
        ),
    }
    Ok(())
}
