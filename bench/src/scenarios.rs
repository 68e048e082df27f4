//! The scenarios: what each one provisions, pre-signs and sends, on a fresh server each.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::bound::Bound;
use crate::committer::Sampler;
use crate::load::{self, Outcome};
use crate::peer::NodePeer;
use crate::report::{mb, Row, RssGrowth, Targets};
use crate::server::{Firehook, Store};
use crate::setup::Api;
use crate::sign::SvixSecret;
use crate::sink::Sink;
use crate::workload::{self, Expect, Order, Workload};

/// The bootstrap key every server under test is started with.
const API_KEY: &str = "fh_bench_0123456789abcdef0123456789abcdef";
/// The Stripe signing secret of every Stripe connection.
const STRIPE_SECRET: &str = "whsec_bench_stripe_0123456789abcdef";
/// Most deliveries pre-signed at a time in the soak, which reports memory after each batch.
const SOAK_BATCH: usize = 25_000;
/// A soak batch is sized to be sent within this at the last batch's rate, so that its
/// timestamps stay well inside the server's 5-minute tolerance.
const SOAK_BATCH_SECS: f64 = 120.0;
/// Signed with a key the server does not know, for the rejection path.
const BAD_SIGNATURES: usize = 1_000;
/// Deliveries the bound cycles through (it keeps nothing, so repeats are not duplicates).
const BOUND_POOL: usize = 50_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Db {
    Sqlite,
    Postgres,
}

#[derive(Clone, Copy)]
enum Kind {
    /// Sends for the set duration.
    Timed(Load),
    /// Sends unique Clerk deliveries until the soak's count or budget is reached.
    Soak,
}

#[derive(Clone, Copy)]
enum Load {
    UniqueClerk,
    /// Unique Clerk deliveries, with a `"*"` webhook subscription to the bench's sink.
    UniqueClerkSubscribed,
    /// Unique Clerk deliveries with the delivery log off, to show what the log costs.
    UniqueClerkUnlogged,
    UniqueStripe,
    Duplicates,
    ApiFires,
    BadSignatures,
}

pub struct Scenario {
    pub number: u8,
    pub name: &'static str,
    db: Db,
    kind: Kind,
    pub targets: Targets,
}

pub const SCENARIOS: [Scenario; 9] = [
    Scenario {
        number: 1,
        name: "unique Clerk deliveries, SQLite",
        db: Db::Sqlite,
        kind: Kind::Timed(Load::UniqueClerk),
        targets: Targets {
            min_ratio: Some(0.45),
            min_peer_multiple: Some(2.5),
            max_p99_ms: Some(10.0),
            max_tail: Some(4.0),
            max_rss_growth_mb: None,
        },
    },
    Scenario {
        number: 2,
        name: "unique Clerk deliveries, PostgreSQL",
        db: Db::Postgres,
        kind: Kind::Timed(Load::UniqueClerk),
        targets: Targets {
            min_ratio: Some(0.15),
            min_peer_multiple: None,
            max_p99_ms: Some(10.0),
            max_tail: None,
            max_rss_growth_mb: None,
        },
    },
    Scenario {
        number: 3,
        name: "one Clerk delivery replayed (duplicates), SQLite",
        db: Db::Sqlite,
        kind: Kind::Timed(Load::Duplicates),
        targets: Targets {
            min_ratio: Some(0.80),
            min_peer_multiple: None,
            max_p99_ms: Some(10.0),
            max_tail: None,
            max_rss_growth_mb: None,
        },
    },
    Scenario {
        number: 4,
        name: "API fires, unique Idempotency-Keys, SQLite",
        db: Db::Sqlite,
        kind: Kind::Timed(Load::ApiFires),
        targets: Targets {
            min_ratio: Some(0.45),
            min_peer_multiple: None,
            max_p99_ms: Some(10.0),
            max_tail: Some(4.0),
            max_rss_growth_mb: None,
        },
    },
    Scenario {
        number: 5,
        name: "bad signatures (401 counts as accepted), SQLite",
        db: Db::Sqlite,
        kind: Kind::Timed(Load::BadSignatures),
        targets: Targets::NONE,
    },
    Scenario {
        number: 6,
        name: "soak: unique Clerk deliveries in a row, SQLite",
        db: Db::Sqlite,
        kind: Kind::Soak,
        targets: Targets {
            min_ratio: None,
            min_peer_multiple: None,
            max_p99_ms: None,
            max_tail: None,
            max_rss_growth_mb: Some(50.0),
        },
    },
    Scenario {
        number: 7,
        name: "unique Stripe deliveries, SQLite",
        db: Db::Sqlite,
        kind: Kind::Timed(Load::UniqueStripe),
        targets: Targets::NONE,
    },
    Scenario {
        number: 8,
        name: "unique Clerk deliveries, SQLite, every event to a webhook subscription",
        db: Db::Sqlite,
        kind: Kind::Timed(Load::UniqueClerkSubscribed),
        targets: Targets::NONE,
    },
    Scenario {
        number: 9,
        name: "unique Clerk deliveries, SQLite, delivery log off",
        db: Db::Sqlite,
        kind: Kind::Timed(Load::UniqueClerkUnlogged),
        targets: Targets::NONE,
    },
];

/// How long the soak (6) goes on.
pub struct SoakPlan {
    pub deliveries: usize,
    pub budget: Option<Duration>,
}

pub struct Bench {
    pub server_bin: PathBuf,
    pub pg_url: String,
    pub connections: usize,
    pub duration: Duration,
    pub soak: SoakPlan,
    secret: SvixSecret,
    /// Makes this run's ids unlike any earlier run's.
    run_tag: u64,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Bench {
    pub fn new(
        server_bin: PathBuf,
        pg_url: String,
        connections: usize,
        duration: Duration,
        soak: SoakPlan,
    ) -> Bench {
        let secret = SvixSecret::new(b"firehook-bench-svix-signing-key!");
        Bench {
            server_bin,
            pg_url,
            connections,
            duration,
            soak,
            secret,
            run_tag: unix_now() as u64,
        }
    }

    fn tag(&self, scenario: u8) -> String {
        format!("r{}s{scenario}n", self.run_tag)
    }

    /// The bare route, driven with unique Clerk deliveries like (1).
    pub async fn bound(&self) -> anyhow::Result<Row> {
        println!("upper bound: bare actix-web route, Svix check + JSON parse, nothing stored");
        let bound = Bound::start(self.secret.clone())?;
        let path = "/api/integrations/clerk/webhook/con_bound";
        let requests = workload::clerk(path, &self.secret, &self.tag(0), 0..BOUND_POOL, unix_now());
        let work = Workload {
            requests,
            order: Order::Cycle,
            expect: Expect::Success,
        };
        let outcome = load::run(
            bound.addr(),
            Arc::new(work),
            self.connections,
            self.duration,
        )
        .await;
        bound.stop().await?;
        let outcome = outcome?;
        println!("   {:.0} accepted/s", outcome.accepted_per_sec());
        Ok(Row::new(
            "upper bound: bare actix-web, Svix verify + JSON parse",
            outcome,
            &Targets::NONE,
        ))
    }

    /// The hand-written Express + svix receiver, driven with unique Clerk deliveries like
    /// (1), as many as the bound could take.
    pub async fn peer(&self, dir: &std::path::Path, bound_rate: f64) -> anyhow::Result<Row> {
        println!("peer: Express + svix SDK, two workers, in-memory dedupe, nothing stored");
        let port = crate::server::free_port()?;
        let peer = NodePeer::start(dir, &self.secret, port).await?;
        let unique = (bound_rate * self.duration.as_secs_f64() * 1.2) as usize + self.connections;
        let work = Workload {
            requests: workload::clerk("/clerk", &self.secret, &self.tag(0), 0..unique, unix_now()),
            order: Order::Once,
            expect: Expect::Success,
        };
        let outcome = load::run(peer.addr, Arc::new(work), self.connections, self.duration).await;
        peer.stop();
        let outcome = outcome?;
        println!("   {:.0} accepted/s", outcome.accepted_per_sec());
        Ok(Row::new(
            "Node peer: Express + svix, nothing stored",
            outcome,
            &Targets::NONE,
        ))
    }

    /// Runs `scenario` on a fresh server, and stops it whatever happens.
    pub async fn run(&self, scenario: &Scenario, bound_rate: f64) -> anyhow::Result<Row> {
        let store = match scenario.db {
            Db::Sqlite => Store::Sqlite,
            Db::Postgres => Store::Postgres {
                server_url: self.pg_url.clone(),
            },
        };
        println!("({}) {}", scenario.number, scenario.name);
        // The outbound scenario's receiver is on loopback, which firehook refuses by default.
        let env: &[(&str, &str)] = match scenario.kind {
            Kind::Timed(Load::UniqueClerkSubscribed) => {
                &[("FIREHOOK__OUTBOUND__ALLOW_PRIVATE_URLS", "true")]
            }
            Kind::Timed(Load::UniqueClerkUnlogged) => {
                &[("FIREHOOK__DELIVERY_LOG__ENABLED", "false")]
            }
            _ => &[],
        };
        let server = Firehook::start(&self.server_bin, &store, API_KEY, env).await?;
        let result = match scenario.kind {
            Kind::Timed(load) => self.timed(scenario, load, &server, bound_rate).await,
            Kind::Soak => self.soak(scenario, &server).await,
        };
        let stopped = server.stop().await;
        let row = result?;
        stopped?;
        Ok(row)
    }

    /// Every scenario but the soak (6): provision, pre-sign, then send for the set duration.
    async fn timed(
        &self,
        scenario: &Scenario,
        load: Load,
        server: &Firehook,
        bound_rate: f64,
    ) -> anyhow::Result<Row> {
        let api = Api::new(server.addr, API_KEY)?;
        let tag = self.tag(scenario.number);
        // Enough unique requests for the bound's rate over the whole run, and a margin.
        let unique = (bound_rate * self.duration.as_secs_f64() * 1.2) as usize + self.connections;
        let now = unix_now();
        let prepared = Instant::now();
        let sink = match load {
            Load::UniqueClerkSubscribed => {
                let sink = Sink::start()?;
                api.subscribe_all(&format!("http://{}/hook", sink.addr()))
                    .await?;
                Some(sink)
            }
            _ => None,
        };
        let (requests, order, expect) = match load {
            Load::UniqueClerk | Load::UniqueClerkSubscribed | Load::UniqueClerkUnlogged => {
                let path = api.clerk(&self.secret).await?;
                let requests = workload::clerk(&path, &self.secret, &tag, 0..unique, now);
                (requests, Order::Once, Expect::Success)
            }
            Load::UniqueStripe => {
                let path = api.stripe(STRIPE_SECRET).await?;
                let requests = workload::stripe(&path, STRIPE_SECRET, &tag, 0..unique, now);
                (requests, Order::Once, Expect::Success)
            }
            Load::Duplicates => {
                let path = api.clerk(&self.secret).await?;
                let requests = workload::clerk(&path, &self.secret, &tag, 0..1, now);
                (requests, Order::Cycle, Expect::Success)
            }
            Load::ApiFires => {
                let path = api.api_trigger().await?;
                (
                    workload::api_fires(&path, API_KEY, &tag, 0..unique),
                    Order::Once,
                    Expect::Success,
                )
            }
            Load::BadSignatures => {
                let path = api.clerk(&self.secret).await?;
                let wrong = SvixSecret::new(b"not-the-key-firehook-was-given!!");
                let requests = workload::clerk(&path, &wrong, &tag, 0..BAD_SIGNATURES, now);
                (requests, Order::Cycle, Expect::Unauthorized)
            }
        };
        println!(
            "   provisioned, and prepared {} requests of {} bytes, in {:.1}s",
            requests.len(),
            requests[0].body.len(),
            prepared.elapsed().as_secs_f64()
        );
        let work = Workload {
            requests,
            order,
            expect,
        };
        let before = server.usage()?;
        let committer = Sampler::start(server.pid());
        let outcome =
            load::run(server.addr, Arc::new(work), self.connections, self.duration).await?;
        let committer = committer.map(Sampler::finish);
        let usage = server.usage()? - before;
        if outcome.exhausted {
            println!(
                "   ran out of pre-built requests after {:.1}s",
                outcome.elapsed.as_secs_f64()
            );
        }
        let sent_events = sink.as_ref().map(Sink::events);
        let memory = server.memory()?;
        println!(
            "   {:.0} accepted/s; server counted: {}",
            outcome.accepted_per_sec(),
            api.counters().await?
        );
        println!(
            "   per accepted request, the server used {:.0} µs of CPU and wrote {:.1} KB to storage",
            usage.cpu_us_per(outcome.accepted),
            usage.kb_written_per(outcome.accepted)
        );
        if let Some(committer) = committer {
            println!("   {}", committer.describe(outcome.accepted));
        }
        if let (Some(sink), Some(during)) = (sink, sent_events) {
            report_outbound(sink, during, &outcome).await?;
        }
        Ok(Row::new(scenario.name, outcome, &scenario.targets)
            .numbered(scenario.number)
            .memory(memory)
            .usage(usage))
    }

    /// Scenario 6: unique deliveries in batches until the count (or the time budget) is
    /// reached, with the server's memory after each batch.
    async fn soak(&self, scenario: &Scenario, server: &Firehook) -> anyhow::Result<Row> {
        let api = Api::new(server.addr, API_KEY)?;
        let path = api.clerk(&self.secret).await?;
        let tag = self.tag(scenario.number);
        let plan = &self.soak;
        match plan.budget {
            Some(budget) => println!(
                "   up to {} deliveries within a {}s budget",
                plan.deliveries,
                budget.as_secs()
            ),
            None => println!("   {} deliveries", plan.deliveries),
        }
        let start = server.memory()?;
        println!(
            "   RSS at start: {:.1} MB (peak {:.1} MB)",
            mb(start.current),
            mb(start.peak)
        );
        let began = Instant::now();
        let mut total: Option<Outcome> = None;
        let (mut signed, mut sent) = (0, 0);
        let mut cache_full = None;
        let dedupe_cache_keys = dedupe_cache_keys();
        let mut batch_size = SOAK_BATCH;
        while signed < plan.deliveries {
            let left = match plan.budget {
                Some(budget) => budget.saturating_sub(began.elapsed()),
                None => Duration::from_secs(24 * 3600),
            };
            if left.is_zero() {
                break;
            }
            let batch = batch_size.min(plan.deliveries - signed);
            let requests = workload::clerk(
                &path,
                &self.secret,
                &tag,
                signed..signed + batch,
                unix_now(),
            );
            signed += batch;
            let work = Workload {
                requests,
                order: Order::Once,
                expect: Expect::Success,
            };
            let outcome = load::run(server.addr, Arc::new(work), self.connections, left).await?;
            sent += outcome.answered() + outcome.errors;
            batch_size =
                ((outcome.accepted_per_sec() * SOAK_BATCH_SECS) as usize).clamp(1_000, SOAK_BATCH);
            let memory = server.memory()?;
            println!(
                "   {sent:>9} sent: RSS {:.1} MB (peak {:.1} MB), {:.0} accepted/s",
                mb(memory.current),
                mb(memory.peak),
                outcome.accepted_per_sec()
            );
            if dedupe_cache_keys.is_some_and(|keys| sent >= keys) {
                cache_full.get_or_insert((sent, memory.current));
            }
            match &mut total {
                Some(total) => total.merge(outcome),
                None => total = Some(outcome),
            }
        }
        let outcome = total.ok_or_else(|| anyhow::anyhow!("the soak sent nothing"))?;
        let end = server.memory()?;
        let growth = end.current as i64 - start.current as i64;
        let per_100k = |bytes: i64, n: u64| mb_signed(bytes) * 100_000.0 / n.max(1) as f64;
        println!(
            "   ran {sent} of {} deliveries in {:.0}s; RSS {:.1} MB -> {:.1} MB ({:+.1} MB, {:+.2} MB per 100k)",
            plan.deliveries,
            began.elapsed().as_secs_f64(),
            mb(start.current),
            mb(end.current),
            mb_signed(growth),
            per_100k(growth, sent)
        );
        if let Some((full, rss)) = cache_full.filter(|&(full, _)| sent > full) {
            let later = end.current as i64 - rss as i64;
            println!(
                "   from {full} sent (the dedupe cache full) to the end: {:+.2} MB per 100k",
                per_100k(later, sent - full)
            );
        }
        let name = format!("{} ({sent} sent)", scenario.name);
        Ok(Row::new(&name, outcome, &scenario.targets)
            .numbered(scenario.number)
            .memory(end)
            .rss_growth(RssGrowth {
                bytes: growth,
                complete: sent >= plan.deliveries as u64,
            }))
    }
}

/// The dispatcher's figures: events delivered while the load ran and until the backlog
/// drained, and how long after its event each one reached the receiver.
async fn report_outbound(sink: Sink, during: u64, inbound: &Outcome) -> anyhow::Result<()> {
    let load_secs = inbound.elapsed.as_secs_f64();
    let drain_started = Instant::now();
    sink.drained(Duration::from_secs(2), Duration::from_secs(120))
        .await;
    let drained_secs = (drain_started.elapsed().as_secs_f64() - 2.0).max(0.0);
    let received = sink.stop().await?;
    let per_fire = received.events as f64 / inbound.accepted.max(1) as f64;
    let ms = |q: f64| received.latency.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "   outbound: {} events ({per_fire:.2} per accepted delivery); {:.0} events/s while \
         the load ran, the rest drained {drained_secs:.1}s after; event -> receiver p50 \
         {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        received.events,
        during as f64 / load_secs.max(1e-9),
        ms(0.50),
        ms(0.99),
        received.latency.max() as f64 / 1000.0
    );
    Ok(())
}

fn mb_signed(bytes: i64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// The servers' `fire.cache_capacity`: the soak also reports growth once the cache is full.
fn dedupe_cache_keys() -> Option<u64> {
    crate::server_setting("FIREHOOK__FIRE__CACHE_CAPACITY", "cache_capacity")?
        .0
        .parse()
        .ok()
}
