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
    /// The `/metrics` listener, when `metrics.bind` gives it an address of its own.
    metrics: Option<(SocketAddr, Server)>,
    store: Store,
    retention: tokio::task::JoinHandle<()>,
    dispatcher: JoinHandle<()>,
    generation: JoinHandle<()>,
}

impl Application {
    /// Connects to the database, applies migrations, bootstraps an empty database and binds
    /// the listener (port 0 picks a free one).
    pub async fn build(settings: Settings, clock: Clock) -> anyhow::Result<Application> {
        let store = open_store(&settings).await?;
        bootstrap(&store, &settings, &clock).await?;

        let listener = TcpListener::bind(&settings.server.bind)?;
        let addr = listener.local_addr()?;
        let metrics_listener = match settings.metrics.bind.as_str() {
            "" => None,
            bind => Some(TcpListener::bind(bind)?),
        };
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
            settings.delivery_log.enabled,
        );
        let retention = retention::spawn(store.clone(), settings.clone(), clock.clone());
        let generation = store.watch_generation();
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
        let metrics = match metrics_listener {
            Some(listener) => Some((listener.local_addr()?, metrics_server(&state, listener)?)),
            None => None,
        };
        let routes = http::routes(metrics.is_none());
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(from_fn(http::input::guard))
                .wrap(from_fn(http::observe))
                .configure(routes.clone())
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
            metrics,
            store,
            retention,
            dispatcher,
            generation,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address the listener is bound to (with the port the system picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the `/metrics` listener, when it has one of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(addr, _)| *addr)
    }

    /// Serves until the process is asked to stop (SIGINT/SIGTERM), then drains in-flight
    /// requests, stops the outbound dispatcher and closes the database. Deliveries it was
    /// sending are sent again after their leases run out.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics.map(|(_, server)| {
            let handle = server.handle();
            (tokio::spawn(server), handle)
        });
        let result = self.server.await;
        if let Some((task, handle)) = metrics {
            handle.stop(true).await;
            let _ = task.await;
        }
        self.retention.abort();
        self.dispatcher.abort();
        self.generation.abort();
        self.store.close().await;
        result
    }
}

/// The listener of `metrics.bind`: `/metrics` and nothing else, on one worker.
fn metrics_server(
    state: &web::Data<Arc<AppState>>,
    listener: TcpListener,
) -> std::io::Result<Server> {
    let state = state.clone();
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(from_fn(http::input::guard))
            .wrap(from_fn(http::observe))
            .configure(http::metrics_routes)
    })
    .workers(1)
    .listen(listener)?
    .run())
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
