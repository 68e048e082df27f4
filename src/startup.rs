//! Building the application: the same entry point for `firehook serve` and the tests.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::KeepAlive;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tokio::task::JoinHandle;

use crate::auth;
use crate::clock::Clock;
use crate::config::{ExposeSecret, Settings};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::outbound::Dispatcher;
use crate::pipeline::Pipeline;
use crate::retention;
use crate::store::{key_file, KeySource, Store};

pub struct Application {
    addr: SocketAddr,
    server: Server,
    store: Store,
    retention: tokio::task::JoinHandle<()>,
    dispatcher: JoinHandle<()>,
}

impl Application {
    /// Connects to the database, applies migrations, bootstraps an empty database and binds
    /// the listener (port 0 picks a free one).
    pub async fn build(settings: Settings, clock: Clock) -> anyhow::Result<Application> {
        let store = open_store(&settings).await?;
        bootstrap(&store, &settings, &clock).await?;

        let listener = TcpListener::bind(&settings.server.bind)?;
        let addr = listener.local_addr()?;
        let public_url = match settings.server.public_url.trim_end_matches('/') {
            "" => format!("http://{addr}"),
            url => url.to_owned(),
        };
        let metrics = Metrics::new();
        let pipeline = Pipeline::new(
            store.clone(),
            clock.clone(),
            metrics.clone(),
            retention::key_windows(&settings),
            settings.fire.cache_capacity,
        );
        let retention = retention::spawn(store.clone(), settings.clone(), clock.clone());
        let dispatcher = Dispatcher::new(
            store.clone(),
            clock.clone(),
            metrics.clone(),
            pipeline.events().clone(),
            settings.outbound.clone(),
        )?
        .spawn();
        let workers = settings.server.workers;
        let server_settings = settings.server.clone();
        let state = web::Data::new(Arc::new(AppState {
            store: store.clone(),
            pipeline,
            clock,
            metrics,
            limits: http::limits::RateLimits::new(&settings.rate_limit),
            public_url,
            settings,
        }));
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(from_fn(http::input::guard))
                .wrap(from_fn(http::observe))
                .configure(http::routes)
        })
        .client_request_timeout(Duration::from_millis(
            server_settings.client_request_timeout_ms,
        ))
        .client_disconnect_timeout(Duration::from_secs(1))
        .keep_alive(match server_settings.keep_alive_secs {
            0 => KeepAlive::Disabled,
            secs => KeepAlive::Timeout(Duration::from_secs(secs)),
        })
        .max_connections(server_settings.max_connections)
        .listen(listener)?;
        if workers > 0 {
            server = server.workers(workers);
        }
        Ok(Application {
            addr,
            server: server.run(),
            store,
            retention,
            dispatcher,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address the listener is bound to (with the port the system picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the process is asked to stop (SIGINT/SIGTERM), then drains in-flight
    /// requests, stops the outbound dispatcher and closes the database. Deliveries it was
    /// sending are sent again after their leases run out.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.retention.abort();
        self.dispatcher.abort();
        self.store.close().await;
        result
    }
}

/// Connects with the configured encryption key, applies migrations, then seals any secret
/// still in clear (from before secrets were encrypted) and checks that the key opens the
/// others, so a wrong key stops the start rather than failing deliveries later.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let (key, source) = key_file::resolve(settings)?;
    let key_id = key.id().to_owned();
    let store = Store::connect(&settings.database, key).await?;
    store.migrate().await?;
    let sealed = store.seal_clear_secrets().await.with_context(|| {
        let from = match &source {
            KeySource::Configured => "security.encryption_key".to_owned(),
            KeySource::File(path) => format!("the key file {}", path.display()),
        };
        format!(
            "the encryption key from {from} (key id {key_id}) does not decrypt the stored \
             signing secrets: start with the key they were encrypted with"
        )
    })?;
    if sealed > 0 {
        tracing::info!(sealed, "encrypted the signing secrets stored in clear");
    }
    Ok(store)
}

/// On an empty database: creates the default org and its first API key, printed once.
async fn bootstrap(store: &Store, settings: &Settings, clock: &Clock) -> anyhow::Result<()> {
    if store.count_orgs().await? > 0 {
        return Ok(());
    }
    let configured = Some(settings.bootstrap.api_key.expose_secret()).filter(|k| !k.is_empty());
    let (org_id, key) = auth::create_org(store, "default", configured, clock.now_ms()).await?;
    if configured.is_some() {
        tracing::info!(org = %org_id, "created the default org with the configured API key");
    } else {
        // Printed once, on stderr, and never logged.
        eprintln!(
            "\nfirehook: created org {org_id} and its first API key (shown only now):\n\n    {}\n",
            key.secret
        );
    }
    Ok(())
}
