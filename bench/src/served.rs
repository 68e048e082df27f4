//! An actix-web server of the bench's own (the bound, the outbound sink), run on a thread
//! with its own actix system so the generator's runtime stays free.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

pub struct Served {
    pub addr: SocketAddr,
    handle: ServerHandle,
    thread: thread::JoinHandle<std::io::Result<()>>,
}

impl Served {
    /// Serves `routes` on a free loopback port with `workers` threads (actix's default,
    /// one per core, when `None`).
    pub fn start<F>(workers: Option<usize>, routes: F) -> anyhow::Result<Served>
    where
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let mut server = HttpServer::new(move || App::new().configure(routes.clone()));
                if let Some(workers) = workers {
                    server = server.workers(workers);
                }
                let server = server.bind("127.0.0.1:0")?;
                let addr = server.addrs()[0];
                let server = server.run();
                let _ = tx.send((addr, server.handle()));
                server.await
            })
        });
        let (addr, handle) = rx
            .recv()
            .map_err(|_| anyhow::anyhow!("a bench server failed to start"))?;
        Ok(Served {
            addr,
            handle,
            thread,
        })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.handle.stop(true).await;
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("a bench server panicked"))??;
        Ok(())
    }
}
