//! The upper bound: a bare actix-web route in this process, on its own port, that only
//! checks the Svix signature and parses the JSON body, storing nothing.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{web, HttpRequest, HttpResponse};

use crate::served::Served;
use crate::sign::SvixSecret;

const TOLERANCE_SECS: i64 = 300;

pub struct Bound {
    served: Served,
}

impl Bound {
    /// Starts the route (as many workers as firehook's default: one per core).
    pub fn start(secret: SvixSecret) -> anyhow::Result<Bound> {
        let secret = web::Data::new(secret);
        let served = Served::start(None, move |cfg| {
            cfg.app_data(secret.clone()).route(
                "/api/integrations/{provider}/webhook/{connection_id}",
                web::post().to(receive),
            );
        })?;
        Ok(Bound { served })
    }

    pub fn addr(&self) -> SocketAddr {
        self.served.addr
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.served.stop().await
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
