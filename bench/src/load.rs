//! The generator: C keep-alive HTTP/1.1 connections, one task each, sending pre-built
//! requests from a shared index until the time is up or a send-once list runs out.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::workload::{Prepared, Workload};

/// A request that takes longer than this counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One keep-alive connection.
pub struct Conn {
    addr: SocketAddr,
    host: HeaderValue,
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let host = HeaderValue::from_str(&addr.to_string())?;
        Ok(Conn { addr, host, sender })
    }

    /// Sends `req` and reads the whole answer.
    pub async fn send(&mut self, req: &Prepared) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::new(Full::new(req.body.clone()));
        *request.method_mut() = req.method.clone();
        *request.uri_mut() = req.uri.clone();
        *request.headers_mut() = req.headers.clone();
        request.headers_mut().insert(HOST, self.host.clone());
        let exchange = async {
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .context("timed out")??;
        Ok(answer)
    }

    async fn reopen(&mut self) -> anyhow::Result<()> {
        *self = Conn::open(self.addr).await?;
        Ok(())
    }
}

/// What a run measured.
pub struct Outcome {
    /// Answers with the expected status.
    pub accepted: u64,
    /// Answers by status, for those that were not 2xx.
    pub non_2xx: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection error or timeout).
    pub errors: u64,
    /// Latency of every answered request, in microseconds.
    pub latency: Histogram<u64>,
    /// Time spent sending (the clock).
    pub elapsed: Duration,
    /// A send-once list ran out before the time was up.
    pub exhausted: bool,
}

impl Outcome {
    fn empty() -> Outcome {
        Outcome {
            accepted: 0,
            non_2xx: BTreeMap::new(),
            errors: 0,
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            elapsed: Duration::ZERO,
            exhausted: false,
        }
    }

    pub fn answered(&self) -> u64 {
        self.latency.len()
    }

    pub fn accepted_per_sec(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Adds `other` (a later batch of the same scenario).
    pub fn merge(&mut self, other: Outcome) {
        self.accepted += other.accepted;
        for (status, n) in other.non_2xx {
            *self.non_2xx.entry(status).or_default() += n;
        }
        self.errors += other.errors;
        self.latency.add(&other.latency).expect("same bounds");
        self.elapsed += other.elapsed;
        self.exhausted |= other.exhausted;
    }
}

/// Drives `workload` at `addr` over `connections` connections for `duration` (or until a
/// send-once list runs out), with every connection open before the clock starts.
pub async fn run(
    addr: SocketAddr,
    workload: Arc<Workload>,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Outcome> {
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(
            Conn::open(addr)
                .await
                .with_context(|| format!("connecting to {addr}"))?,
        );
    }
    let next = Arc::new(AtomicUsize::new(0));
    let exhausted = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| {
            let (workload, next, exhausted) = (workload.clone(), next.clone(), exhausted.clone());
            tokio::spawn(worker(conn, workload, next, exhausted, deadline))
        })
        .collect();
    let mut total = Outcome::empty();
    for task in tasks {
        total.merge(task.await?);
    }
    total.elapsed = started.elapsed();
    total.exhausted = exhausted.load(Ordering::Relaxed);
    Ok(total)
}

async fn worker(
    mut conn: Conn,
    workload: Arc<Workload>,
    next: Arc<AtomicUsize>,
    exhausted: Arc<AtomicBool>,
    deadline: Instant,
) -> Outcome {
    let mut out = Outcome::empty();
    while Instant::now() < deadline {
        let Some(req) = workload.get(next.fetch_add(1, Ordering::Relaxed)) else {
            exhausted.store(true, Ordering::Relaxed);
            break;
        };
        let sent = Instant::now();
        match conn.send(req).await {
            Ok((status, _)) => {
                out.latency
                    .saturating_record(sent.elapsed().as_micros() as u64);
                if workload.expect.met(status) {
                    out.accepted += 1;
                }
                if !status.is_success() {
                    *out.non_2xx.entry(status.as_u16()).or_default() += 1;
                }
            }
            Err(_) => {
                out.errors += 1;
                if conn.reopen().await.is_err() {
                    break;
                }
            }
        }
    }
    out
}
