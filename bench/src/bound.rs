//! The upper bound: a bare actix-web route in this process, on its own port, that only
//! checks the Svix signature and parses the JSON body, storing nothing.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use crate::sign::SvixSecret;

const TOLERANCE_SECS: i64 = 300;

pub struct Bound {
    pub addr: SocketAddr,
    handle: ServerHandle,
    thread: thread::JoinHandle<std::io::Result<()>>,
}

impl Bound {
    /// Starts the route (as many workers as firehook's default: one per core).
    pub fn start(secret: SvixSecret) -> anyhow::Result<Bound> {
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let secret = web::Data::new(secret);
                let server = HttpServer::new(move || {
                    App::new().app_data(secret.clone()).route(
                        "/api/integrations/{provider}/webhook/{connection_id}",
                        web::post().to(receive),
                    )
                })
                .bind("127.0.0.1:0")?;
                let addr = server.addrs()[0];
                let server = server.run();
                let _ = tx.send((addr, server.handle()));
                server.await
            })
        });
        let (addr, handle) = rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the bound server failed to start"))?;
        Ok(Bound {
            addr,
            handle,
            thread,
        })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.handle.stop(true).await;
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the bound server panicked"))??;
        Ok(())
    }
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    secret: web::Data<SvixSecret>,
) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(timestamp), Some(signature)) = (
        header("svix-id"),
        header("svix-timestamp"),
        header("svix-signature"),
    ) else {
        return HttpResponse::BadRequest().finish();
    };
    let Ok(timestamp) = timestamp.parse::<i64>() else {
        return HttpResponse::BadRequest().finish();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if (now - timestamp).abs() > TOLERANCE_SECS || !secret.verify(id, timestamp, &body, signature) {
        return HttpResponse::Unauthorized().finish();
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(_) => HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"received":true}"#),
        Err(_) => HttpResponse::BadRequest().finish(),
    }
}
