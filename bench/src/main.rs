//! `firehook-bench`: load benchmark for firehook. Builds (or takes) the release server,
//! measures a bare upper bound, then each scenario on a fresh server, and prints a table.

mod bound;
mod committer;
mod load;
mod peer;
mod report;
mod scenarios;
mod served;
mod server;
mod setup;
mod sign;
mod sink;
mod workload;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::report::LogPair;
use crate::scenarios::{Bench, SoakPlan, SCENARIOS};

/// The soak's time budget when every scenario runs, so that `all` ends within 10 minutes.
const ALL_SOAK_BUDGET: Duration = Duration::from_secs(240);

#[derive(Parser)]
#[command(name = "firehook-bench", about = "Load benchmark for firehook")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Measure the upper bound, then every scenario (or those picked with --scenario).
    All(Options),
}

#[derive(Args)]
struct Options {
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// How long each timed scenario (and the bound) sends, e.g. 10s, 500ms, 1m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Run only scenario N (repeatable): 1 unique Clerk/SQLite, 2 unique Clerk/PostgreSQL,
    /// 3 duplicates, 4 API fires, 5 bad signatures, 6 soak, 7 unique Stripe/SQLite,
    /// 8 unique Clerk/SQLite with every event sent to a local webhook receiver, 9 unique
    /// Clerk/SQLite with the delivery log off.
    #[arg(long = "scenario", value_name = "N", value_parser = clap::value_parser!(u8).range(1..=9))]
    scenarios: Vec<u8>,
    /// Unique deliveries the soak (6) sends in a row.
    #[arg(long, default_value_t = 1_000_000)]
    soak_deliveries: usize,
    /// Stop the soak after this long (0: no limit). Default: 240s when every scenario runs,
    /// no limit with --scenario.
    #[arg(long, value_parser = parse_duration)]
    soak_budget: Option<Duration>,
    /// The firehook binary to test. Default: `cargo build --release -p firehook`, then
    /// <target dir>/release/firehook.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// PostgreSQL server for scenario 2 (trust auth; a database is created and dropped with psql).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pg_url: String,
    /// The hand-written Node receiver measured beside the bound (installed with `npm ci`
    /// under the target directory). Default: ../shared/peers/node-receiver.
    #[arg(long)]
    peer_dir: Option<PathBuf>,
    /// Leave the Node peer out.
    #[arg(long)]
    no_peer: bool,
    /// When both (1) and (9) run: how many times to measure them in alternation for the
    /// delivery log's cost (the table's runs are the first pair); the median is printed.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    log_pairs: u32,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 10s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("`{text}`: use ms, s or m")),
    }
}

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ sits in the workspace")
}

/// Builds the release server with cargo (a no-op when it is up to date) and answers its path.
fn build_server() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!("building the server: cargo build --release -p firehook");
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "firehook"])
        .current_dir(workspace_root())
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo build --release -p firehook failed");
    }
    Ok(target_dir().join("release").join("firehook"))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// A setting of the servers under test: the environment variable if set (they inherit the
/// environment), else config/default.toml's value; the second item says which.
pub(crate) fn server_setting(env: &str, key: &str) -> Option<(String, &'static str)> {
    if let Ok(value) = std::env::var(env) {
        return Some((value, "from the environment"));
    }
    let defaults =
        std::fs::read_to_string(workspace_root().join("config/default.toml")).unwrap_or_default();
    defaults
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once('=')?;
            (name.trim() == key).then(|| value.trim().trim_matches('"').to_owned())
        })
        .map(|value| (value, "config/default.toml"))
}

/// The SQLite `synchronous` setting the servers run with.
fn sqlite_synchronous() -> String {
    match server_setting(
        "FIREHOOK__DATABASE__SQLITE_SYNCHRONOUS",
        "sqlite_synchronous",
    ) {
        Some((value, source)) => format!("{value} ({source})"),
        None => "unknown".into(),
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        });
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let kb: f64 = info
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(format!("{:.1} GiB", kb / 1_048_576.0))
        });
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cores} cores ({}), {} RAM",
        cpu.as_deref().unwrap_or("unknown CPU"),
        memory.as_deref().unwrap_or("unknown")
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let Cmd::All(opts) = Cli::parse().command;
    let server_bin = match opts.server_bin {
        Some(bin) => bin,
        None => build_server()?,
    };
    if !server_bin.is_file() {
        bail!("no firehook binary at {}", server_bin.display());
    }
    let every = opts.scenarios.is_empty();
    let budget = match opts.soak_budget {
        Some(budget) if budget.is_zero() => None,
        Some(budget) => Some(budget),
        None if every => Some(ALL_SOAK_BUDGET),
        None => None,
    };
    let soak = SoakPlan {
        deliveries: opts.soak_deliveries,
        budget,
    };
    let bench = Bench::new(
        server_bin,
        opts.pg_url,
        opts.connections,
        opts.duration,
        soak,
    );
    println!("machine: {}", machine());
    println!(
        "server: {} (SQLite synchronous = {}, HTTP workers: one per core)",
        bench.server_bin.display(),
        sqlite_synchronous()
    );
    println!(
        "generator: {} connections, {}s per timed scenario\n",
        bench.connections,
        bench.duration.as_secs_f64()
    );

    let started = Instant::now();
    let bound = bench.bound().await?;
    let peer = if opts.no_peer {
        None
    } else {
        let source = opts
            .peer_dir
            .unwrap_or_else(|| workspace_root().join("../shared/peers/node-receiver"));
        let measured = match peer::install(&source, &target_dir()) {
            Ok(dir) => bench.peer(&dir, bound.rate()).await,
            Err(e) => Err(e),
        };
        measured
            .inspect_err(|e| println!("   the Node peer did not run: {e:#}"))
            .ok()
    };
    let mut rows = Vec::new();
    for scenario in SCENARIOS
        .iter()
        .filter(|s| every || opts.scenarios.contains(&s.number))
    {
        match bench.run(scenario, bound.rate()).await {
            Ok(row) => rows.push(row),
            Err(e) => println!("   ({}) failed: {e:#}", scenario.number),
        }
    }
    let mut log_pairs: Vec<LogPair> = LogPair::in_rows(&rows).into_iter().collect();
    if !log_pairs.is_empty() {
        let [with_log, without_log] = [1, 9].map(|n| {
            SCENARIOS
                .iter()
                .find(|s| s.number == n)
                .expect("scenarios 1 and 9 exist")
        });
        for pair in 2..=opts.log_pairs {
            println!(
                "\nthe delivery log's cost, pair {pair} of {}:",
                opts.log_pairs
            );
            let on = bench.run(with_log, bound.rate()).await;
            let off = bench.run(without_log, bound.rate()).await;
            match (on, off) {
                (Ok(on), Ok(off)) => log_pairs.push(LogPair::new(&on, &off)),
                (Err(e), _) | (_, Err(e)) => println!("   this pair failed: {e:#}"),
            }
        }
    }
    report::print_table(&bound, peer.as_ref(), &rows);
    report::print_log_cost(&log_pairs);
    println!("\ntotal time {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
